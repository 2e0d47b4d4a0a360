// `recmesh pki ...`: the command line over recmesh::pki::Pki.
#include <ctime>
#include <iostream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "recmesh/core/error.hpp"
#include "recmesh/core/file_io.hpp"
#include "recmesh/core/secret.hpp"
#include "recmesh/pki/pki.hpp"

#include "command.hpp"
#include "record_json.hpp"

namespace recmesh::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kPassphraseEnv = "RECMESH_PKI_PASSPHRASE";

struct PkiFlags {
  std::string dir;
  std::string passphrase_file;
  bool json_output = false;
};

void add_common(CLI::App* cmd, PkiFlags& flags, bool signs) {
  cmd->add_option("--dir", flags.dir, "PKI directory")->required();
  if (signs) {
    cmd->add_option("--passphrase-file", flags.passphrase_file,
                    "File holding the CA passphrase (mode 0600); default: $RECMESH_PKI_PASSPHRASE");
  }
}

pki::Pki open_for_signing(const PkiFlags& flags) {
  Secret passphrase = secret_from_file_or_env(flags.passphrase_file, kPassphraseEnv);
  return pki::Pki::open(flags.dir, pki::Pki::Access::kReadWrite, std::move(passphrase));
}

pki::Pki open_for_reading(const PkiFlags& flags) {
  return pki::Pki::open(flags.dir, pki::Pki::Access::kReadOnly);
}

void print_issued(const pki::IssuedCertificate& issued, bool as_json, std::string_view verb) {
  if (as_json) {
    std::cout << issued_to_json(issued).dump() << '\n';
    return;
  }
  const auto& r = issued.record;
  std::cout << fmt::format("{} {} ({}), serial {}, valid until {}\n", verb, r.common_name, r.kind,
                           r.serial, format_time(r.not_after));
  std::cout << fmt::format("  cert   {}\n", issued.files.cert.string());
  if (!issued.files.key.empty()) {
    std::cout << fmt::format("  key    {}\n", issued.files.key.string());
  }
  std::cout << fmt::format("  chain  {}\n  cafile {}\n", issued.files.chain.string(),
                           issued.files.cafile.string());
}

void add_init(CLI::App* pki_cmd, Runner& run) {
  auto flags = std::make_shared<PkiFlags>();
  auto* cmd =
      pki_cmd->add_subcommand("init", "Create RootCA, EMS CA and Bridge CA in a new directory");
  add_common(cmd, *flags, true);
  cmd->callback([flags, &run] {
    run = [flags] {
      Secret passphrase = secret_from_file_or_env(flags->passphrase_file, kPassphraseEnv);
      pki::Pki pki = pki::Pki::create(flags->dir, std::move(passphrase));
      std::cout << fmt::format("created PKI in {}: root, ems and bridge CAs\n",
                               pki.directory().string());
      return kExitOk;
    };
  });
}

void add_add_rec(CLI::App* pki_cmd, Runner& run) {
  auto flags = std::make_shared<PkiFlags>();
  auto rec = std::make_shared<std::string>();
  auto* cmd = pki_cmd->add_subcommand("add-rec", "Create the CA of a Renewable Energy Community");
  add_common(cmd, *flags, true);
  cmd->add_option("--rec", *rec, "REC ID")->required();
  cmd->callback([flags, rec, &run] {
    run = [flags, rec] {
      pki::Pki pki = open_for_signing(*flags);
      auto authority = pki.add_rec(*rec);
      std::cout << fmt::format("created CA {} ({})\n", authority.id, authority.common_name);
      return kExitOk;
    };
  });
}

void add_add_member(CLI::App* pki_cmd, Runner& run) {
  auto flags = std::make_shared<PkiFlags>();
  auto rec = std::make_shared<std::string>();
  auto member = std::make_shared<std::string>();
  auto* cmd = pki_cmd->add_subcommand("add-member", "Create a member CA, signed by its REC CA");
  add_common(cmd, *flags, true);
  cmd->add_option("--rec", *rec, "REC ID")->required();
  cmd->add_option("--member", *member, "member ID")->required();
  cmd->callback([flags, rec, member, &run] {
    run = [flags, rec, member] {
      pki::Pki pki = open_for_signing(*flags);
      auto authority = pki.add_member(*rec, *member);
      std::cout << fmt::format("created CA {} ({})\n", authority.id, authority.common_name);
      return kExitOk;
    };
  });
}

struct IssueFlags {
  std::string kind, rec, member, name, csr, key_passphrase_file;
  std::vector<std::string> sans;
  std::optional<int> days;
};

void add_issue(CLI::App* pki_cmd, Runner& run) {
  auto flags = std::make_shared<PkiFlags>();
  auto issue = std::make_shared<IssueFlags>();
  auto* cmd = pki_cmd->add_subcommand(
      "issue", "Issue a leaf certificate; the common name, issuer and EKU follow from --kind");
  add_common(cmd, *flags, true);
  cmd->add_option("--kind", issue->kind,
                  "device, gateway, local-broker, central-broker, bridge or service")
      ->required();
  cmd->add_option("--rec", issue->rec, "REC ID (device, gateway, local-broker, bridge)");
  cmd->add_option("--member", issue->member, "member ID (device, gateway, local-broker, bridge)");
  cmd->add_option("--name", issue->name,
                  "device ID (device) or service name (service; central-broker: default broker)");
  cmd->add_option("--san", issue->sans, "subjectAltName DNS:<host> or IP:<address>; repeatable");
  cmd->add_option("--days", issue->days, "lifetime in days (default 90)");
  cmd->add_option("--csr", issue->csr,
                  "sign this PKCS#10 request instead of generating a key (its subject is ignored)");
  cmd->add_option("--key-passphrase-file", issue->key_passphrase_file,
                  "encrypt the generated key (PKCS#8) with the passphrase in this file");
  cmd->add_flag("--json", flags->json_output, "print one JSON object with absolute paths");
  cmd->callback([flags, issue, &run] {
    run = [flags, issue] {
      pki::IssueRequest request;
      request.identity = pki::Identity::make(pki::parse_identity_kind(issue->kind), issue->rec,
                                             issue->member, issue->name);
      for (const auto& san : issue->sans) {
        request.sans.push_back(pki::SubjectAltName::parse(san));
      }
      request.days = issue->days;
      if (!issue->csr.empty()) {
        request.csr_pem = read_file(issue->csr);
      }
      std::optional<Secret> key_passphrase;
      if (!issue->key_passphrase_file.empty()) {
        key_passphrase = read_secret_file(issue->key_passphrase_file);
        request.key_passphrase = &*key_passphrase;
      }
      pki::Pki pki = open_for_signing(*flags);
      print_issued(pki.issue(request), flags->json_output, "issued");
      return kExitOk;
    };
  });
}

void add_renew(CLI::App* pki_cmd, Runner& run) {
  auto flags = std::make_shared<PkiFlags>();
  auto cn = std::make_shared<std::string>();
  auto issue = std::make_shared<IssueFlags>();
  auto* cmd = pki_cmd->add_subcommand(
      "renew", "Re-issue a certificate with a new key; the old one is revoked as superseded");
  add_common(cmd, *flags, true);
  cmd->add_option("--cn", *cn, "common name of the certificate to renew")->required();
  cmd->add_option("--days", issue->days, "lifetime in days (default: as before)");
  cmd->add_option("--csr", issue->csr, "sign this PKCS#10 request instead of generating a key");
  cmd->add_option("--key-passphrase-file", issue->key_passphrase_file,
                  "encrypt the generated key (PKCS#8) with the passphrase in this file");
  cmd->add_flag("--json", flags->json_output, "print one JSON object");
  cmd->callback([flags, cn, issue, &run] {
    run = [flags, cn, issue] {
      const std::string csr = issue->csr.empty() ? std::string() : read_file(issue->csr);
      std::optional<Secret> key_passphrase;
      if (!issue->key_passphrase_file.empty()) {
        key_passphrase = read_secret_file(issue->key_passphrase_file);
      }
      pki::Pki pki = open_for_signing(*flags);
      print_issued(pki.renew(*cn, issue->days, csr, key_passphrase ? &*key_passphrase : nullptr),
                   flags->json_output, "renewed");
      return kExitOk;
    };
  });
}

void add_revoke(CLI::App* pki_cmd, Runner& run) {
  auto flags = std::make_shared<PkiFlags>();
  auto target = std::make_shared<pki::RevocationTarget>();
  auto reason = std::make_shared<std::string>("cessation-of-operation");
  auto* cmd = pki_cmd->add_subcommand(
      "revoke",
      "Revoke one certificate (--cn or --serial), a member (--rec --member: its CA and every "
      "certificate naming it) or a REC (--rec)");
  add_common(cmd, *flags, true);
  cmd->add_option("--cn", target->common_name, "common name of a leaf certificate");
  cmd->add_option("--serial", target->serial, "serial number (hex)");
  cmd->add_option("--rec", target->rec, "REC ID");
  cmd->add_option("--member", target->member, "member ID (with --rec)");
  cmd->add_option("--reason", *reason,
                  "unspecified, key-compromise, ca-compromise, affiliation-changed, superseded, "
                  "cessation-of-operation");
  cmd->add_flag("--json", flags->json_output, "print one JSON object");
  cmd->callback([flags, target, reason, &run] {
    run = [flags, target, reason] {
      const auto why = pki::parse_revocation_reason(*reason);
      pki::Pki pki = open_for_signing(*flags);
      const auto result = pki.revoke(*target, why);
      if (flags->json_output) {
        std::cout << json{{"revoked", result.revoked_serials},
                          {"crls_updated", result.crls_updated}}
                         .dump()
                  << '\n';
      } else {
        std::cout << fmt::format("revoked {} certificate(s); CRLs re-signed: {}\n",
                                 result.revoked_serials.size(),
                                 fmt::join(result.crls_updated, ", "));
      }
      return kExitOk;
    };
  });
}

void add_list(CLI::App* pki_cmd, Runner& run) {
  auto flags = std::make_shared<PkiFlags>();
  auto filter = std::make_shared<IssueFlags>();
  auto status = std::make_shared<std::string>();
  auto* cmd = pki_cmd->add_subcommand("list", "List CAs and certificates");
  add_common(cmd, *flags, false);
  cmd->add_option("--rec", filter->rec, "only this REC");
  cmd->add_option("--member", filter->member, "only this member");
  cmd->add_option("--kind", filter->kind, "only this kind (ca, device, gateway, ...)");
  cmd->add_option("--status", *status, "only valid, revoked or superseded");
  cmd->add_flag("--json", flags->json_output, "print a JSON object");
  cmd->callback([flags, filter, status, &run] {
    run = [flags, filter, status] {
      pki::Pki pki = open_for_reading(*flags);
      std::optional<pki::CertificateStatus> wanted;
      if (!status->empty()) {
        wanted = pki::parse_certificate_status(*status);
      }
      json certs = json::array();
      std::vector<pki::CertificateRecord> shown;
      for (const auto& r : pki.certificates()) {
        if ((!filter->rec.empty() && r.rec != filter->rec) ||
            (!filter->member.empty() && r.member != filter->member) ||
            (!filter->kind.empty() && r.kind != filter->kind) || (wanted && r.status != *wanted)) {
          continue;
        }
        shown.push_back(r);
      }
      if (flags->json_output) {
        json out{{"authorities", json::array()}, {"certificates", json::array()}};
        for (const auto& a : pki.authorities()) {
          out["authorities"].push_back(authority_to_json(a));
        }
        for (const auto& r : shown) {
          out["certificates"].push_back(record_to_json(r, false));
        }
        std::cout << out.dump() << '\n';
        return kExitOk;
      }
      std::cout << fmt::format("{:<34} {:<8} {:<10} {:<20} {}\n", "COMMON NAME", "KIND", "STATUS",
                               "NOT AFTER", "SERIAL");
      for (const auto& r : shown) {
        std::cout << fmt::format("{:<34} {:<8} {:<10} {:<20} {}\n", r.common_name,
                                 r.kind == "central-broker" ? "central" : r.kind.substr(0, 8),
                                 to_string(r.status), format_time(r.not_after), r.serial);
      }
      return kExitOk;
    };
  });
}

void add_show(CLI::App* pki_cmd, Runner& run) {
  auto flags = std::make_shared<PkiFlags>();
  auto target = std::make_shared<pki::RevocationTarget>();
  auto* cmd = pki_cmd->add_subcommand("show", "Show one certificate with its files and status");
  add_common(cmd, *flags, false);
  auto* by_cn = cmd->add_option("--cn", target->common_name, "common name (newest certificate)");
  auto* by_serial = cmd->add_option("--serial", target->serial, "serial number (hex)");
  by_cn->excludes(by_serial);
  cmd->add_flag("--json", flags->json_output, "print one JSON object");
  cmd->callback([flags, target, &run] {
    run = [flags, target] {
      if (target->common_name.empty() == target->serial.empty()) {
        throw Error(ErrorCode::kInvalidArgument, "give --cn or --serial");
      }
      pki::Pki pki = open_for_reading(*flags);
      const auto record = target->serial.empty() ? pki.find_by_common_name(target->common_name)
                                                 : pki.find_by_serial(target->serial);
      json out = record_to_json(record, true);
      out.update(files_to_json(pki.files_of(record)));
      if (flags->json_output) {
        std::cout << out.dump() << '\n';
      } else {
        std::cout << out.dump(2) << '\n';
      }
      return kExitOk;
    };
  });
}

void add_verify(CLI::App* pki_cmd, Runner& run) {
  auto flags = std::make_shared<PkiFlags>();
  auto cert = std::make_shared<std::string>();
  auto* cmd = pki_cmd->add_subcommand(
      "verify",
      "Check a certificate's chain to the RootCA and every CRL on the way; exit 0 when valid, "
      "1 when not");
  add_common(cmd, *flags, false);
  cmd->add_option("--cert", *cert, "PEM file: the certificate, optionally followed by its chain")
      ->required();
  cmd->add_flag("--json", flags->json_output, "print one JSON object");
  cmd->callback([flags, cert, &run] {
    run = [flags, cert] {
      pki::Pki pki = open_for_reading(*flags);
      const auto result = pki.verify(read_file(*cert));
      if (flags->json_output) {
        std::cout << json{{"valid", result.valid},
                          {"common_name", result.common_name},
                          {"reason", result.reason},
                          {"openssl_error", result.openssl_error}}
                         .dump()
                  << '\n';
      } else {
        std::cout << fmt::format("{}: {}{}\n", *cert, result.valid ? "OK" : "INVALID: ",
                                 result.valid ? "" : result.reason);
      }
      return result.valid ? kExitOk : kExitRejected;
    };
  });
}

void add_crl(CLI::App* pki_cmd, Runner& run) {
  auto flags = std::make_shared<PkiFlags>();
  auto print_ca = std::make_shared<std::string>();
  auto* cmd = pki_cmd->add_subcommand(
      "crl", "Re-sign every CA's CRL (default), or print one CA's CRL with --print CA");
  add_common(cmd, *flags, true);
  cmd->add_option("--print", *print_ca,
                  "CA ID whose CRL to print (root, ems, bridge, rec_<r>, "
                  "member_<r>_<m>)");
  cmd->callback([flags, print_ca, &run] {
    run = [flags, print_ca] {
      if (!print_ca->empty()) {
        pki::Pki pki = open_for_reading(*flags);
        (void)pki.authority(*print_ca);  // kNotFound for an unknown CA
        std::cout << read_file(pki.authority_crl_path(*print_ca));
        return kExitOk;
      }
      pki::Pki pki = open_for_signing(*flags);
      const auto ids = pki.refresh_crls();
      std::cout << fmt::format("re-signed {} CRLs: {}\n", ids.size(), fmt::join(ids, ", "));
      return kExitOk;
    };
  });
}

}  // namespace

void add_pki_commands(CLI::App& app, Runner& run) {
  auto* pki_cmd = app.add_subcommand("pki", "Manage the certificate hierarchy (docs/pki.md)");
  pki_cmd->require_subcommand(1);
  add_init(pki_cmd, run);
  add_add_rec(pki_cmd, run);
  add_add_member(pki_cmd, run);
  add_issue(pki_cmd, run);
  add_renew(pki_cmd, run);
  add_revoke(pki_cmd, run);
  add_list(pki_cmd, run);
  add_show(pki_cmd, run);
  add_verify(pki_cmd, run);
  add_crl(pki_cmd, run);
}

}  // namespace recmesh::cli
