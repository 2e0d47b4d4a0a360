#pragma once

#include <cstddef>

#include <openssl/types.h>

// Batched I/O for a TLS connection that libmosquitto drives.
//
// libmosquitto hands OpenSSL one MQTT packet per SSL_write and reads a packet a few bytes at a
// time: on a busy connection that is a send() per packet and two read()s per TLS record, and
// OpenSSL frees and reallocates its record buffers between them (libmosquitto sets
// SSL_MODE_RELEASE_BUFFERS). Once the handshake is done, batch_tls_io() puts a write buffer
// between OpenSSL and the socket, lets OpenSSL read ahead whatever the socket holds, and keeps
// the record buffers. The connection's records and bytes on the wire stay the same; they only
// leave in fewer system calls.
//
// The caller owes the buffer a flush_tls_writes() after each batch of writes, and must look at
// tls_input_buffered() before it waits for the socket to be readable: bytes OpenSSL read ahead
// are no longer in the socket.
namespace recmesh::mqtt::tls_batching {

// Bytes gathered before the buffer writes them to the socket by itself.
inline constexpr std::size_t kWriteBufferBytes = std::size_t{64} * 1024;

// Installs batching on an established connection; does nothing if it is already installed.
// False if OpenSSL cannot allocate the buffer: the connection then works unbatched.
bool install(SSL* ssl);

enum class FlushResult {
  kDone,        // nothing left in the buffer
  kWouldBlock,  // the socket is full: flush again once it is writable
  kFailed,      // the socket failed; the next read or write reports it
};
FlushResult flush_tls_writes(SSL* ssl);

// Bytes written by OpenSSL that the socket has not yet taken.
std::size_t pending_tls_writes(const SSL* ssl);

// True when OpenSSL holds input read from the socket that was not yet handed to the reader.
// Peeks, so it may read the socket and decrypt the next record.
bool tls_input_buffered(SSL* ssl);

}  // namespace recmesh::mqtt::tls_batching
