#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "recmesh/core/sqlite_database.hpp"

namespace recmesh::ems {

// Where a control stands (docs/ems.md, "Control tracking"). ISSUED until the gateway's first
// response; SUCCESS, PARTIAL, FAILED and TIMED_OUT are final.
inline constexpr std::string_view kStateIssued = "ISSUED";
inline constexpr std::string_view kStateTimedOut = "TIMED_OUT";
bool is_final_state(std::string_view state);

// Where an operator's request (`recmesh ctl`) stands (docs/ems.md, "Operator requests"): QUEUED
// until the engine takes it; TAKEN once the engine issued it as the control of the same ID;
// EXPIRED when nobody took it by take_by; REFUSED when the engine could not issue it (`error`).
inline constexpr std::string_view kRequestQueued = "QUEUED";
inline constexpr std::string_view kRequestTaken = "TAKEN";
inline constexpr std::string_view kRequestExpired = "EXPIRED";
inline constexpr std::string_view kRequestRefused = "REFUSED";

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

struct RequestRow {
  std::string control_id;  // the ID the control will carry
  std::string rec;
  std::string member;
  std::string type;            // a member control type
  std::string params = "{}";   // JSON object
  std::string devices = "[]";  // JSON array of device IDs
  std::string device;          // diagnostic: the device asked for a signed report
  std::string requested_by;    // who asked: "<user> (uid <n>, pid <n>)"
  std::int64_t requested_at_ms = 0;
  std::int64_t take_by_ms = 0;  // not issued after this (Unix ms)
  std::string state;            // kRequest*
  std::string error;            // REFUSED: why
  std::string command_id;       // diagnostic: the signed device command
  std::string report;           // diagnostic: {"signer": ..., "report": ...} once verified
};

// The EMS engine's SQLite database: latest member metrics and their history, component status,
// diagnostic arrivals, every control with its state, and the operators' requests. The engine
// writes everything but the requests, which `recmesh ctl` queues and the engine takes; who can
// write the file can control the community (docs/ems.md, "Who may control").
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

  // Operator requests. put_request() queues; take_request() moves one QUEUED request whose
  // take_by has not passed to TAKEN, and expire_request() one QUEUED request to EXPIRED: each
  // true only for the caller that made the change, so the engine and ctl never both win.
  void put_request(const RequestRow& row);
  std::vector<RequestRow> queued_requests();
  bool take_request(std::string_view control_id, std::int64_t now_ms);
  bool expire_request(std::string_view control_id);
  void refuse_request(std::string_view control_id, std::string_view error);
  void set_request_command(std::string_view control_id, std::string_view command_id);
  void set_request_report(std::string_view control_id, std::string_view report);
  std::optional<RequestRow> request(std::string_view control_id);
  // TAKEN diagnostic requests of the device still without a verified report.
  std::vector<RequestRow> awaiting_reports(std::string_view rec, std::string_view member,
                                           std::string_view device);
  // Changes when another connection commits: the engine's cheap "anything queued?" check.
  std::int64_t data_version();

  // Which of a member gateway's end-to-end message IDs the engine stored (docs/protocol/e2e.md
  // §6.1): the highest and the window's bitmap, written in the same transaction as the message.
  struct Delivery {
    std::uint64_t highest = 0;
    std::string bitmap;
  };
  void put_delivery(std::string_view rec, std::string_view member, const Delivery& delivery);
  std::optional<Delivery> delivery(std::string_view rec, std::string_view member);
  // Controls still ISSUED (no response from the gateway yet) with their payloads, oldest first:
  // sent again in each new end-to-end session with the member.
  struct Unconfirmed {
    std::string control_id;
    std::string payload;
  };
  std::vector<Unconfirmed> unconfirmed_controls(std::string_view rec, std::string_view member);
  // The members that have such controls.
  std::vector<std::pair<std::string, std::string>> members_with_unconfirmed_controls();

  // The next control sequence of the issuer: above both the last one stored and the wall clock
  // in milliseconds, so sequences stay monotonic across restarts and across processes that
  // share the database.
  std::uint64_t next_sequence(std::uint64_t now_ms);

  SqliteDatabase& db() { return db_; }

 private:
  SqliteDatabase db_;
};

}  // namespace recmesh::ems
