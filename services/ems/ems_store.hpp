#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "recmesh/core/sqlite_database.hpp"

namespace recmesh::ems {

// Where a control stands (docs/ems.md, "Control tracking"). ISSUED until the gateway's first
// response; SUCCESS, PARTIAL, FAILED and TIMED_OUT are final.
inline constexpr std::string_view kStateIssued = "ISSUED";
inline constexpr std::string_view kStateTimedOut = "TIMED_OUT";
bool is_final_state(std::string_view state);

struct MemberRow {
  std::string rec;
  std::string member;
  std::string updated_at;  // when the last aggregate arrived
  std::string metrics;     // the last MemberMetrics, canonical JSON
};

struct ComponentRow {
  std::string rec;
  std::string member;
  std::string component;  // "device/<d>", "smart-gateway" or "bridge"
  std::string status;     // "online", "offline" or "" (only info seen)
  std::string info;       // the last status/info, JSON or ""
  std::string updated_at;
};

struct ControlRow {
  std::string control_id;
  std::string rec;
  std::string member;
  std::string type;
  std::int64_t sequence = 0;
  std::string issued_at;
  std::string state;
  std::string updated_at;
  std::string last_response;  // the last MemberControlResponse, JSON or ""
};

// The EMS engine's SQLite database: latest member metrics and their history, component status,
// diagnostic arrivals and every control with its state. One writer (the engine); `recmesh ctl`
// opens it read-only.
class EmsStore {
 public:
  EmsStore(const std::filesystem::path& path, SqliteDatabase::Mode mode);

  void put_member_metrics(std::string_view rec, std::string_view member, std::string_view metric,
                          std::string_view payload, std::string_view now);
  void put_status(std::string_view rec, std::string_view member, std::string_view component,
                  std::optional<std::string_view> status, std::optional<std::string_view> info,
                  std::string_view now);
  void put_diagnostic(std::string_view rec, std::string_view member, std::string_view component,
                      std::string_view payload, std::string_view now);
  void put_control(const ControlRow& row, std::string_view payload);
  void update_control(std::string_view control_id, std::string_view state,
                      std::string_view response, std::string_view now);
  std::optional<ControlRow> control(std::string_view control_id);
  std::vector<ControlRow> controls();
  // Controls not yet in a final state, oldest first: what a restarted engine tracks again.
  std::vector<ControlRow> open_controls();
  std::vector<MemberRow> members();
  std::vector<ComponentRow> components();
  std::int64_t count(std::string_view table);

  // The next control sequence of the issuer: above both the last one stored and the wall clock
  // in milliseconds, so sequences stay monotonic across restarts and across processes that
  // share the database.
  std::uint64_t next_sequence(std::uint64_t now_ms);

  SqliteDatabase& db() { return db_; }

 private:
  SqliteDatabase db_;
};

}  // namespace recmesh::ems
