#include "recmesh/metrics/registry.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "recmesh/core/error.hpp"
#include "recmesh/core/identifier.hpp"

namespace recmesh::metrics {
namespace {

bool valid_name(std::string_view name, bool allow_colon) {
  const auto first = [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (allow_colon && c == ':');
  };
  return !name.empty() && first(name.front()) && std::all_of(name.begin(), name.end(), [&](char c) {
    return first(c) || (c >= '0' && c <= '9');
  });
}

std::string escape(std::string_view text, bool quote_too) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote_too && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::string render_labels(const Labels& labels) {
  if (labels.empty()) {
    return {};
  }
  std::string out = "{";
  for (std::size_t i = 0; i < labels.size(); ++i) {
    out += fmt::format("{}{}=\"{}\"", i == 0 ? "" : ",", labels[i].first,
                       escape(labels[i].second, true));
  }
  return out + "}";
}

std::string render_value(double value) {
  if (std::isnan(value)) {
    return "NaN";
  }
  if (std::isinf(value)) {
    return value > 0 ? "+Inf" : "-Inf";
  }
  return fmt::format("{}", value);
}

}  // namespace

Registry::Family& Registry::family(std::string_view name, std::string_view help, Type type,
                                   Labels& labels) {
  if (!valid_name(name, true)) {
    throw Error(ErrorCode::kInvalidArgument, "invalid metric name " + quote_untrusted(name) +
                                                 " (allowed: [a-zA-Z_:][a-zA-Z0-9_:]*)");
  }
  std::sort(labels.begin(), labels.end());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::string& label = labels[i].first;
    if (!valid_name(label, false) || label.starts_with("__")) {
      throw Error(ErrorCode::kInvalidArgument,
                  "invalid label name " + quote_untrusted(label) +
                      " (allowed: [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)");
    }
    if (i > 0 && labels[i - 1].first == label) {
      throw Error(ErrorCode::kInvalidArgument, "label " + label + " given twice");
    }
  }
  auto found = families_.find(name);
  if (found == families_.end()) {
    found = families_.emplace(std::string(name), Family{type, std::string(help), {}, {}}).first;
  } else if (found->second.type != type || found->second.help != help) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("metric {} is already registered with another type or help", name));
  }
  return found->second;
}

Counter& Registry::counter(std::string_view name, std::string_view help, Labels labels) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, help, Type::kCounter, labels);
  auto& slot = f.counters[labels];
  if (!slot) {
    slot = std::make_unique<Counter>();
  }
  return *slot;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, Labels labels) {
  std::lock_guard lock(mutex_);
  Family& f = family(name, help, Type::kGauge, labels);
  auto& slot = f.gauges[labels];
  if (!slot) {
    slot = std::make_unique<Gauge>();
  }
  return *slot;
}

std::string Registry::render_prometheus() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape(f.help, false), name,
                       f.type == Type::kCounter ? "counter" : "gauge");
    for (const auto& [labels, series] : f.counters) {
      out += fmt::format("{}{} {}\n", name, render_labels(labels), series->value());
    }
    for (const auto& [labels, series] : f.gauges) {
      out += fmt::format("{}{} {}\n", name, render_labels(labels), render_value(series->value()));
    }
  }
  return out;
}

}  // namespace recmesh::metrics
