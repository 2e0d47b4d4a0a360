// recmesh-guard: the Mosquitto 2.0 plugin (API v5) shim. Only MOSQ_ERR_* codes cross this
// boundary: every callback catches everything and fails closed.
#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <openssl/x509.h>

extern "C" {
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
}

#include "guard_engine.hpp"

namespace {

using recmesh::guard::GuardEngine;
using recmesh::guard::Verdict;

constexpr const char* kControlTopic = "$CONTROL/recmesh-guard/v1";

class MosquittoHooks final : public recmesh::guard::BrokerHooks {
 public:
  void kick(const std::string& client_id) override {
    mosquitto_kick_client_by_clientid(client_id.c_str(), false);
  }
  void publish(const std::string& client_id, std::string_view topic, std::string_view payload,
               int qos) override {
    const std::string name(topic);
    // The broker copies the payload; the plugin keeps ownership of its buffer.
    mosquitto_broker_publish_copy(client_id.empty() ? nullptr : client_id.c_str(), name.c_str(),
                                  static_cast<int>(payload.size()), payload.data(), qos, false,
                                  nullptr);
  }
  void log(bool error, const std::string& line) override {
    mosquitto_log_printf(error ? MOSQ_LOG_ERR : MOSQ_LOG_NOTICE, "%s", line.c_str());
  }
};

struct Plugin {
  mosquitto_plugin_id_t* id = nullptr;
  MosquittoHooks hooks;
  std::unique_ptr<GuardEngine> engine;
};

void log_exception(const char* where) {
  try {
    throw;
  } catch (const std::exception& e) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "recmesh-guard: %s: %s", where, e.what());
  } catch (...) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "recmesh-guard: %s: unknown failure", where);
  }
}

int on_basic_auth(int /*event*/, void* event_data, void* userdata) {
  try {
    auto* plugin = static_cast<Plugin*>(userdata);
    auto* ed = static_cast<mosquitto_evt_basic_auth*>(event_data);
    GuardEngine::Connect connect;
    connect.client = ed->client;
    // A new reference (SSL_get_peer_certificate), released here.
    std::unique_ptr<X509, decltype(&X509_free)> cert(
        static_cast<X509*>(mosquitto_client_certificate(ed->client)), &X509_free);
    connect.certificate = cert.get();
    connect.keepalive_s = mosquitto_client_keepalive(ed->client);
    const char* id = mosquitto_client_id(ed->client);
    const char* address = mosquitto_client_address(ed->client);
    connect.client_id = id != nullptr ? id : "";
    connect.address = address != nullptr ? address : "";
    std::string username;
    if (plugin->engine->on_connect(connect, username) != Verdict::kAllow) {
      return MOSQ_ERR_AUTH;
    }
    // The identity replaces whatever username the client sent: nothing else can claim it.
    return mosquitto_set_username(ed->client, username.c_str()) == MOSQ_ERR_SUCCESS
               ? MOSQ_ERR_SUCCESS
               : MOSQ_ERR_AUTH;
  } catch (...) {
    log_exception("connect");
    return MOSQ_ERR_AUTH;
  }
}

int on_acl_check(int /*event*/, void* event_data, void* userdata) {
  try {
    auto* plugin = static_cast<Plugin*>(userdata);
    auto* ed = static_cast<mosquitto_evt_acl_check*>(event_data);
    GuardEngine::Access access = GuardEngine::Access::kOther;
    switch (ed->access) {
      case MOSQ_ACL_READ:
        access = GuardEngine::Access::kRead;
        break;
      case MOSQ_ACL_WRITE:
        access = GuardEngine::Access::kWrite;
        break;
      case MOSQ_ACL_SUBSCRIBE:
        access = GuardEngine::Access::kSubscribe;
        break;
      case MOSQ_ACL_UNSUBSCRIBE:
        return MOSQ_ERR_SUCCESS;  // dropping a subscription never widens access
      default:
        return MOSQ_ERR_ACL_DENIED;
    }
    const int held =
        access == GuardEngine::Access::kSubscribe ? mosquitto_client_sub_count(ed->client) : 0;
    const char* username = mosquitto_client_username(ed->client);
    return plugin->engine->on_acl(ed->client, access, ed->topic != nullptr ? ed->topic : "",
                                  ed->payloadlen, ed->retain, held,
                                  username != nullptr ? username : "") == Verdict::kAllow
               ? MOSQ_ERR_SUCCESS
               : MOSQ_ERR_ACL_DENIED;
  } catch (...) {
    log_exception("acl check");
    return MOSQ_ERR_ACL_DENIED;
  }
}

int on_control(int /*event*/, void* event_data, void* userdata) {
  try {
    auto* plugin = static_cast<Plugin*>(userdata);
    auto* ed = static_cast<mosquitto_evt_control*>(event_data);
    plugin->engine->on_control(ed->client,
                               std::string_view(static_cast<const char*>(ed->payload),
                                                ed->payload == nullptr ? 0 : ed->payloadlen));
    return MOSQ_ERR_SUCCESS;
  } catch (...) {
    log_exception("policy update");
    return MOSQ_ERR_UNKNOWN;
  }
}

int on_disconnect(int /*event*/, void* event_data, void* userdata) {
  try {
    auto* plugin = static_cast<Plugin*>(userdata);
    plugin->engine->on_disconnect(static_cast<mosquitto_evt_disconnect*>(event_data)->client);
  } catch (...) {
    log_exception("disconnect");
  }
  return MOSQ_ERR_SUCCESS;
}

int on_tick(int /*event*/, void* /*event_data*/, void* userdata) {
  try {
    static_cast<Plugin*>(userdata)->engine->on_tick();
  } catch (...) {
    log_exception("tick");
  }
  return MOSQ_ERR_SUCCESS;
}

struct Registration {
  int event;
  MOSQ_FUNC_generic_callback callback;
  const char* data;
};

constexpr Registration kRegistrations[] = {
    {MOSQ_EVT_BASIC_AUTH, on_basic_auth, nullptr},
    {MOSQ_EVT_ACL_CHECK, on_acl_check, nullptr},
    {MOSQ_EVT_CONTROL, on_control, kControlTopic},
    {MOSQ_EVT_DISCONNECT, on_disconnect, nullptr},
    {MOSQ_EVT_TICK, on_tick, nullptr},
};

void unregister(Plugin& plugin) {
  for (const auto& r : kRegistrations) {
    mosquitto_callback_unregister(plugin.id, r.event, r.callback, r.data);
  }
}

}  // namespace

extern "C" {

int mosquitto_plugin_version(int supported_version_count, const int* supported_versions) {
  for (int i = 0; i < supported_version_count; ++i) {
    if (supported_versions[i] == 5) {
      return 5;
    }
  }
  return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t* identifier, void** userdata,
                          struct mosquitto_opt* options, int option_count) {
  try {
    std::vector<std::pair<std::string, std::string>> opts;
    opts.reserve(static_cast<std::size_t>(std::max(option_count, 0)));
    for (int i = 0; i < option_count; ++i) {
      opts.emplace_back(options[i].key != nullptr ? options[i].key : "",
                        options[i].value != nullptr ? options[i].value : "");
    }
    auto plugin = std::make_unique<Plugin>();
    plugin->id = identifier;
    plugin->engine =
        std::make_unique<GuardEngine>(recmesh::guard::GuardOptions::parse(opts), plugin->hooks);
    for (const auto& r : kRegistrations) {
      if (mosquitto_callback_register(identifier, r.event, r.callback, r.data, plugin.get()) !=
          MOSQ_ERR_SUCCESS) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "recmesh-guard: cannot register callback %d", r.event);
        unregister(*plugin);
        return MOSQ_ERR_UNKNOWN;
      }
    }
    *userdata = plugin.release();
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "recmesh-guard: loaded");
    return MOSQ_ERR_SUCCESS;
  } catch (...) {
    log_exception("start-up");
    return MOSQ_ERR_UNKNOWN;
  }
}

int mosquitto_plugin_cleanup(void* userdata, struct mosquitto_opt* /*options*/,
                             int /*option_count*/) {
  try {
    std::unique_ptr<Plugin> plugin(static_cast<Plugin*>(userdata));
    if (plugin) {
      unregister(*plugin);
    }
  } catch (...) {
    log_exception("cleanup");
  }
  return MOSQ_ERR_SUCCESS;
}

}  // extern "C"
