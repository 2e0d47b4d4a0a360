#include "sim/sim_report.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

#include <fmt/format.h>

namespace recmesh::sim {
namespace {

using Json = nlohmann::json;

std::string escape_html(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

struct Series {
  std::string name;
  std::string color;
  std::function<std::optional<double>(const Sample&)> value;
};

// A line chart of `series` over the samples' time, axes labelled, in plain SVG.
std::string svg_chart(const std::string& title, const std::string& unit,
                      const std::vector<Sample>& samples, const std::vector<Series>& series) {
  constexpr double kWidth = 760;
  constexpr double kHeight = 240;
  constexpr double kLeft = 70;
  constexpr double kRight = 150;
  constexpr double kTop = 30;
  constexpr double kBottom = 30;
  const double plot_w = kWidth - kLeft - kRight;
  const double plot_h = kHeight - kTop - kBottom;
  double t_max = samples.empty() ? 1 : std::max(1.0, samples.back().t_s);
  double lo = 0;
  double hi = 1;
  for (const auto& s : samples) {
    for (const auto& line : series) {
      if (const auto v = line.value(s)) {
        lo = std::min(lo, *v);
        hi = std::max(hi, *v);
      }
    }
  }
  if (hi - lo < 1e-9) {
    hi = lo + 1;
  }
  const auto x = [&](double t) { return kLeft + plot_w * t / t_max; };
  const auto y = [&](double v) { return kTop + plot_h * (1 - (v - lo) / (hi - lo)); };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" role=\"img\" aria-label=\"{2}\">\n"
      "<text x=\"{3}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{2}</text>\n"
      "<rect x=\"{3}\" y=\"{4}\" width=\"{5}\" height=\"{6}\" fill=\"none\" stroke=\"#999\"/>\n",
      kWidth, kHeight, escape_html(title), kLeft, kTop, plot_w, plot_h);
  for (int i = 0; i <= 4; ++i) {
    const double v = lo + (hi - lo) * i / 4;
    svg += fmt::format(
        "<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#eee\"/>"
        "<text x=\"{3}\" y=\"{4:.1f}\" font-size=\"10\" text-anchor=\"end\">{5:.0f} {6}</text>\n",
        kLeft, kLeft + plot_w, y(v), kLeft - 4, y(v) + 3, v, escape_html(unit));
  }
  svg += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"10\">0 s</text>"
      "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{:.0f} s</text>\n",
      kLeft, kHeight - 10, kLeft + plot_w, kHeight - 10, t_max);
  if (lo < 0 && hi > 0) {
    svg += fmt::format(
        "<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#555\" "
        "stroke-dasharray=\"3,3\"/>\n",
        kLeft, kLeft + plot_w, y(0));
  }
  int legend = 0;
  for (const auto& line : series) {
    std::string points;
    for (const auto& s : samples) {
      if (const auto v = line.value(s)) {
        points += fmt::format("{:.1f},{:.1f} ", x(s.t_s), y(*v));
      }
    }
    svg += fmt::format(
        "<polyline fill=\"none\" stroke=\"{0}\" stroke-width=\"1.5\" points=\"{1}\"/>\n"
        "<rect x=\"{2}\" y=\"{3}\" width=\"10\" height=\"10\" fill=\"{0}\"/>"
        "<text x=\"{4}\" y=\"{5}\" font-size=\"11\">{6}</text>\n",
        line.color, points, kLeft + plot_w + 10, kTop + 16 * legend, kLeft + plot_w + 24,
        kTop + 16 * legend + 9, escape_html(line.name));
    ++legend;
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace

Json report_json(const SimReport& r) {
  Json faults = Json::array();
  for (const auto& f : r.faults) {
    faults.push_back(
        {{"at_s", f.at_s}, {"what", f.what}, {"outcome", f.outcome}, {"refused", f.refused}});
  }
  Json crashes = Json::array();
  for (const auto& c : r.crashes) {
    crashes.push_back({{"name", c.name},
                       {"pid", c.pid},
                       {"exit_code", c.exit_code},
                       {"signal", c.signal},
                       {"at_s", c.at_s},
                       {"restarted", c.restarted},
                       {"log_tail", c.log_tail}});
  }
  Json processes = Json::array();
  for (const auto& p : r.processes) {
    processes.push_back(
        {{"name", p.name}, {"pids", p.pids}, {"ports", p.ports}, {"restarts", p.restarts}});
  }
  Json samples = Json::array();
  for (const auto& s : r.samples) {
    samples.push_back({{"t_s", s.t_s},
                       {"production_w", s.production_w},
                       {"consumption_w", s.consumption_w},
                       {"storage_power_w", s.storage_power_w},
                       {"net_exchange_w", s.net_exchange_w},
                       {"soc_percent", s.soc_percent ? Json(*s.soc_percent) : Json(nullptr)},
                       {"up_per_s", s.up_per_s},
                       {"down_per_s", s.down_per_s},
                       {"members_online", s.members_online}});
  }
  Json startup_phases = Json::array();
  for (const auto& phase : r.startup_phases) {
    startup_phases.push_back({{"phase", phase.name}, {"s", phase.seconds}});
  }
  return {{"scenario", r.scenario},
          {"stop_reason", r.stop_reason},
          {"duration_s", r.duration_s},
          {"members", r.members},
          {"members_online", r.members_online},
          {"devices", r.devices},
          {"devices_online", r.devices_online},
          {"metrics_published", r.metrics_published},
          {"device_metrics_published", r.device_metrics_published},
          {"metrics_received_by_ems", r.metrics_received_by_ems},
          {"metrics_duplicates", r.metrics_duplicates},
          {"controls_issued", r.controls_issued},
          {"controls_completed", r.controls_completed},
          {"controls_failed", r.controls_failed},
          {"controls_in_flight", r.controls_in_flight},
          {"security_events", r.security_events},
          {"lost_qos1", r.lost_qos1},
          {"messages_up", r.messages_up},
          {"messages_down", r.messages_down},
          {"faults", faults},
          {"crashes", crashes},
          {"processes", processes},
          {"startup_s", r.startup_s},
          {"startup_phases", startup_phases},
          {"samples", samples}};
}

std::string report_html(const SimReport& r) {
  std::string html = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>recmesh simulation: {0}</title>"
      "<style>body{{font-family:sans-serif;margin:2em;color:#222}}"
      "table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;"
      "text-align:left}}pre{{background:#f6f6f6;padding:4px}}</style></head><body>\n"
      "<h1>Simulation {0}</h1>\n<p>{1:.0f} s, stopped by {2}.</p>\n<table>\n",
      escape_html(r.scenario), r.duration_s, escape_html(r.stop_reason));
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"members online", fmt::format("{} / {}", r.members_online, r.members)},
      {"devices online", fmt::format("{} / {}", r.devices_online, r.devices)},
      {"aggregates published by gateways", std::to_string(r.metrics_published)},
      {"aggregates received by the EMS", std::to_string(r.metrics_received_by_ems)},
      {"QoS 1 messages lost", std::to_string(r.lost_qos1)},
      {"device metrics published", std::to_string(r.device_metrics_published)},
      {"controls issued / completed / failed / in flight",
       fmt::format("{} / {} / {} / {}", r.controls_issued, r.controls_completed, r.controls_failed,
                   r.controls_in_flight)},
      {"security events", std::to_string(r.security_events)},
      {"messages up / down (central broker)",
       fmt::format("{} / {}", r.messages_up, r.messages_down)},
  };
  for (const auto& [name, value] : rows) {
    html += fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", name, escape_html(value));
  }
  html += "</table>\n<h2>Community energy</h2>\n";
  html += svg_chart(
      "Production, consumption, storage, exchange", "W", r.samples,
      {{"production", "#e6a700", [](const Sample& s) { return s.production_w; }},
       {"consumption", "#c0392b", [](const Sample& s) { return s.consumption_w; }},
       {"storage (discharge +)", "#27ae60", [](const Sample& s) { return s.storage_power_w; }},
       {"exchange (export +)", "#2c6fbb", [](const Sample& s) { return s.net_exchange_w; }}});
  html += svg_chart("Storage state of charge", "%", r.samples,
                    {{"mean SoC", "#27ae60", [](const Sample& s) { return s.soc_percent; }}});
  html += "<h2>Traffic</h2>\n";
  html += svg_chart(
      "Messages per second on the central broker", "msg/s", r.samples,
      {{"up (members to platform)", "#8e44ad", [](const Sample& s) { return s.up_per_s; }},
       {"down (controls)", "#16a085", [](const Sample& s) { return s.down_per_s; }}});
  html += svg_chart("Members online", "", r.samples,
                    {{"members online", "#34495e", [](const Sample& s) {
                        return std::optional<double>(static_cast<double>(s.members_online));
                      }}});
  html += "<h2>Faults and attacks</h2>\n<table><tr><th>at</th><th>what</th><th>outcome</th></tr>\n";
  for (const auto& f : r.faults) {
    html += fmt::format("<tr><td>{:.1f} s</td><td>{}</td><td>{}</td></tr>\n", f.at_s,
                        escape_html(f.what), escape_html(f.outcome));
  }
  html += "</table>\n<h2>Unexpected exits</h2>\n";
  if (r.crashes.empty()) {
    html += "<p>None.</p>\n";
  }
  for (const auto& c : r.crashes) {
    html += fmt::format(
        "<h3>{} (pid {}) at {:.1f} s: {}{}</h3><pre>{}</pre>\n", escape_html(c.name), c.pid, c.at_s,
        c.signal != 0 ? fmt::format("signal {}", c.signal) : fmt::format("exit {}", c.exit_code),
        c.restarted ? ", restarted" : "", escape_html(c.log_tail));
  }
  html += "</body></html>\n";
  return html;
}

}  // namespace recmesh::sim
