#include "tls_batching.hpp"

#include <array>

#include <openssl/bio.h>
#include <openssl/ssl.h>

namespace recmesh::mqtt::tls_batching {
namespace {

// The application data that marks our buffer. It is OpenSSL's buffer BIO, and the handshake
// machinery pushes one of its own above whatever write BIO it finds: the type alone does not
// tell which is ours.
void* marker() {
  static char tag = 0;
  return &tag;
}

bool is_ours(BIO* bio) {
  return BIO_method_type(bio) == BIO_TYPE_BUFFER && BIO_get_app_data(bio) == marker();
}

BIO* our_buffer(const SSL* ssl) {
  for (BIO* bio = SSL_get_wbio(ssl); bio != nullptr; bio = BIO_next(bio)) {
    if (is_ours(bio)) {
      return bio;
    }
  }
  return nullptr;
}

}  // namespace

bool install(SSL* ssl) {
  BIO* socket_bio = SSL_get_wbio(ssl);
  if (socket_bio == nullptr || our_buffer(ssl) != nullptr) {
    return socket_bio != nullptr;
  }
  BIO* buffer = BIO_new(BIO_f_buffer());
  if (buffer == nullptr) {
    return false;
  }
  if (BIO_set_write_buffer_size(buffer, static_cast<long>(kWriteBufferBytes)) <= 0 ||
      BIO_up_ref(socket_bio) != 1) {
    BIO_free(buffer);
    return false;
  }
  BIO_set_app_data(buffer, marker());
  // The chain keeps its own reference to the socket BIO; SSL_set0_wbio drops the one the
  // connection held for writing (it still holds one for reading).
  BIO_push(buffer, socket_bio);
  SSL_set0_wbio(ssl, buffer);
  SSL_set_read_ahead(ssl, 1);
  SSL_clear_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
  return true;
}

FlushResult flush_tls_writes(SSL* ssl) {
  BIO* top = SSL_get_wbio(ssl);
  if (our_buffer(ssl) == nullptr || BIO_wpending(top) == 0) {
    return FlushResult::kDone;
  }
  if (BIO_flush(top) > 0) {
    return FlushResult::kDone;
  }
  return BIO_should_retry(top) ? FlushResult::kWouldBlock : FlushResult::kFailed;
}

std::size_t pending_tls_writes(const SSL* ssl) {
  BIO* buffer = our_buffer(ssl);
  if (buffer == nullptr) {
    return 0;
  }
  const long pending = BIO_wpending(SSL_get_wbio(ssl));
  return pending > 0 ? static_cast<std::size_t>(pending) : 0;
}

bool tls_input_buffered(SSL* ssl) {
  if (our_buffer(ssl) == nullptr || SSL_has_pending(ssl) != 1) {
    return false;
  }
  // Buffered bytes may be only part of a record, which waits for the socket like any read.
  // Peeking decrypts the next record (the reader then takes it from OpenSSL) and tells the two
  // apart; an alert or an error is for the reader to see as well.
  std::array<char, 1> byte{};
  const int got = SSL_peek(ssl, byte.data(), static_cast<int>(byte.size()));
  if (got > 0) {
    return true;
  }
  const int error = SSL_get_error(ssl, got);
  return error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE;
}

}  // namespace recmesh::mqtt::tls_batching
