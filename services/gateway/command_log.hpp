#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/core/sqlite_database.hpp"

namespace recmesh::gateway {

// A member control as the command log holds it.
struct StoredControl {
  std::string control_id;
  std::string intent;                   // "idempotent" or "non-idempotent"
  std::string payload;                  // the MemberControl (or the signed diagnostic) as received
  std::string state;                    // RECEIVED, EXECUTING, SUCCESS, PARTIAL, FAILED
  std::optional<std::string> response;  // the last MemberControlResponse published
};

// The gateway's durable record (docs/gateway.md, "Command log"): every member control and
// every device command with its states and times, the last sequence seen per issuer, and the
// device logs. One SQLite file; every write is committed before the gateway acts on it.
class CommandLog {
 public:
  // Creates the file and schema when missing. Throws Error for an unusable file.
  explicit CommandLog(const std::filesystem::path& path);

  std::optional<StoredControl> find_control(std::string_view control_id);
  void insert_control(std::string_view control_id, std::string_view issued_by,
                      std::uint64_t sequence, std::string_view type, std::string_view intent,
                      std::string_view payload, std::string_view state);
  void update_control(std::string_view control_id, std::string_view state,
                      const std::optional<std::string>& response);
  // Controls whose state is RECEIVED or EXECUTING.
  std::vector<StoredControl> unfinished_controls();

  std::optional<std::uint64_t> last_sequence(std::string_view issuer);
  void set_last_sequence(std::string_view issuer, std::uint64_t sequence);

  // The next sequence of the gateway's own device commands: strictly increasing across restarts.
  std::uint64_t next_command_sequence();
  void insert_command(std::string_view command_id, std::string_view control_id,
                      std::string_view device_id, std::string_view type, std::uint32_t attempt,
                      std::uint64_t sequence, std::string_view payload);
  void update_command(std::string_view command_id, std::string_view state,
                      std::optional<std::int64_t> exit_code,
                      const std::optional<std::string>& details);
  // Marks every device command of `control_id` still open as FAILED with `reason`.
  void fail_open_commands(std::string_view control_id, std::string_view reason);
  // Command IDs, devices and states of one control, for tests and reports.
  struct CommandRow {
    std::string command_id;
    std::string device_id;
    std::string state;
  };
  std::vector<CommandRow> commands_of(std::string_view control_id);

  // Device logs: returns the row id.
  std::int64_t insert_log(std::string_view device_id, std::string_view level,
                          std::string_view timestamp, std::string_view payload);
  void mark_log_forwarded(std::int64_t id);
  std::int64_t count_logs(std::string_view level);

 private:
  SqliteDatabase db_;
};

// The current wall-clock time as an RFC 3339 string with milliseconds.
std::string now_text();

}  // namespace recmesh::gateway
