#!/usr/bin/env python3
"""bench/run scale [--quick]: the largest community this machine sustains (docs/benchmarks.md).

For each size (members x 10 devices, device metrics every 5 s, gateway aggregates every 30 s) it
runs `recmesh sim run` for the whole duration: per member a local Mosquitto, a `recmesh bridge`,
a `recmesh gateway` and a `recmesh device` process, plus the central Mosquitto, the EMS engine
and the simulator. A size is sustained when every aggregate the gateways published reached the
EMS engine (`lost_qos1` 0), every member and device is online at the end and no process crashed.
RSS and CPU are sampled from /proc for every process the simulator recorded, per process kind.

The peer, in the same run: one plain Mosquitto (no TLS, no recmesh component) carrying the same
message rate from as many MQTT clients (QoS 1, payloads of the same size) to one subscriber.

The last line of stdout is one JSON object with the figures.
"""
import argparse
import asyncio
import json
import os
import pathlib
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
KINDS = ["local-broker", "bridge", "gateway", "devices", "central-broker", "ems", "sim"]
DEVICES = {"pv": 3, "battery": 2, "controllable_load": 2, "passive_load": 2, "smart_meter": 1}
DEVICE_METRICS_BYTES = 330  # a DeviceMetrics snapshot as the device simulator encodes it
AGGREGATE_BYTES = 700  # a MemberMetrics aggregate


def log(text):
    print(text, flush=True)


def proc_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_pss_kb(pid):
    """Proportional set size: shared pages (libraries, the recmesh binary) split between users."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def kind_of(name):
    return name.rsplit("/", 1)[-1]


def read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return None


def scenario_yaml(members, duration_s):
    devices = ", ".join(f"{k}: {v}" for k, v in DEVICES.items())
    return (
        f"name: scale-{members}\nseed: 1\nduration_s: {duration_s}\n"
        "rates: {metrics_interval_ms: 5000, aggregate_interval_ms: 30000}\n"
        "physics: {crash_fraction: 0}\n"
        "ems: {policy_period_ms: 30000}\n"
        "supervision: {restart: on-failure, startup_timeout_ms: 600000}\n"
        f"recs:\n  - id: sun\n    generate: {{count: {members}, prefix: m, devices: {{{devices}}}}}\n"
    )


def run_recmesh(recmesh, members, duration_s, work):
    """One `recmesh sim run`; returns the figures of that size."""
    run_dir = work / f"sim-{members}"
    scenario = work / f"scale-{members}.yaml"
    scenario.write_text(scenario_yaml(members, duration_s))
    err = open(work / f"sim-{members}.log", "w")
    started = time.monotonic()
    sim = subprocess.Popen(
        ["nice", "-n", "5", str(recmesh), "sim", "run", str(scenario), "--dir", str(run_dir),
         "--no-view"],
        stdout=err, stderr=subprocess.STDOUT)
    # Up: the simulator logs "processes up in" once every listener is open.
    up_at = None
    while sim.poll() is None and up_at is None:
        time.sleep(1)
        if "processes up in" in (work / f"sim-{members}.log").read_text():
            up_at = time.monotonic()
    if up_at is None:
        err.close()
        return {"members": members, "ok": False, "why": "did not come up"}
    startup_s = up_at - started
    log(f"  {members} members up in {startup_s:.0f} s; running {duration_s} s")
    state = read_json(run_dir / "state.json") or {"processes": []}
    pids = {p["name"]: p["pid"] for p in state["processes"] if p["pid"] > 0}
    pids["sim"] = sim.pid
    cpu0 = {n: proc_cpu_s(p) for n, p in pids.items()}
    t0 = time.monotonic()
    rss = {n: [] for n in pids}
    pss = {n: [] for n in pids}
    # Samples every 30 s until shortly before the end of the duration (the stop is not counted).
    end = up_at + duration_s - 3
    while sim.poll() is None and time.monotonic() < end:
        for name, pid in pids.items():
            value = proc_rss_kb(pid)
            if value is not None:
                rss[name].append(value)
            value = proc_pss_kb(pid)
            if value is not None:
                pss[name].append(value)
        time.sleep(min(30, max(0.5, end - time.monotonic())))
    cpu1 = {n: proc_cpu_s(p) for n, p in pids.items()}
    elapsed = time.monotonic() - t0
    code = sim.wait(timeout=600)
    err.close()
    report = read_json(run_dir / "report.json") or {}
    by_kind = {k: {"rss_kb": [], "pss_kb": [], "cpu_percent": []} for k in KINDS}
    for name in pids:
        kind = "sim" if name == "sim" else kind_of(name)
        if kind not in by_kind or not rss[name]:
            continue
        by_kind[kind]["rss_kb"].append(statistics.median(rss[name]))
        if pss[name]:
            by_kind[kind]["pss_kb"].append(statistics.median(pss[name]))
        if cpu0.get(name) is not None and cpu1.get(name) is not None:
            by_kind[kind]["cpu_percent"].append(100 * (cpu1[name] - cpu0[name]) / elapsed)
    kinds = {}
    for kind, values in by_kind.items():
        if values["rss_kb"]:
            kinds[kind] = {
                "processes": len(values["rss_kb"]),
                "rss_kb_median": round(statistics.median(values["rss_kb"])),
                "rss_mb_total": round(sum(values["rss_kb"]) / 1024, 1),
                "pss_kb_median": round(statistics.median(values["pss_kb"] or [0])),
                "pss_mb_total": round(sum(values["pss_kb"]) / 1024, 1),
                "cpu_percent_total": round(sum(values["cpu_percent"]), 2),
            }
    devices = members * sum(DEVICES.values())
    member_kinds = ["local-broker", "bridge", "gateway", "devices"]
    per_member_kb = sum(kinds[k]["rss_kb_median"] for k in member_kinds if k in kinds)
    per_member_pss_kb = sum(kinds[k]["pss_kb_median"] for k in member_kinds if k in kinds)
    total_mb = sum(v["rss_mb_total"] for v in kinds.values())
    total_pss_mb = sum(v["pss_mb_total"] for v in kinds.values())
    cpu_total = sum(v["cpu_percent_total"] for v in kinds.values())
    lost = report.get("lost_qos1")
    ok = (code == 0 and lost == 0 and report.get("members_online") == members
          and report.get("devices_online") == devices and not report.get("crashes"))
    return {
        "members": members,
        "devices": devices,
        "ok": ok,
        "exit_code": code,
        "startup_s": round(startup_s, 1),
        "duration_s": duration_s,
        "lost": lost,
        "metrics_published": report.get("metrics_published"),
        "metrics_received_by_ems": report.get("metrics_received_by_ems"),
        "device_metrics_published": report.get("device_metrics_published"),
        "members_online": report.get("members_online"),
        "devices_online": report.get("devices_online"),
        "crashes": len(report.get("crashes", [])),
        "kinds": kinds,
        "processes": sum(v["processes"] for v in kinds.values()),
        "rss_mb_total": round(total_mb, 1),
        "rss_mb_per_member": round(per_member_kb / 1024, 2),
        "pss_mb_total": round(total_pss_mb, 1),
        "pss_mb_per_member": round(per_member_pss_kb / 1024, 2),
        "rss_kb_per_device": round(per_member_kb / sum(DEVICES.values())),
        "cpu_percent_total": round(cpu_total, 1),
        "cpu_percent_per_member": round(
            sum(kinds[k]["cpu_percent_total"] for k in member_kinds if k in kinds) / members, 3),
    }


# --- The peer: plain Mosquitto, a minimal MQTT 3.1.1 client (QoS 1) in asyncio. ---

def mqtt_string(text):
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def mqtt_packet(first, body):
    length = len(body)
    header = bytearray([first])
    while True:
        byte = length % 128
        length //= 128
        header.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes(header) + body


async def read_packet(reader):
    first = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return first, await reader.readexactly(length)


async def mqtt_connect(port, client_id):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(mqtt_packet(0x10, mqtt_string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60)
                             + mqtt_string(client_id)))
    first, body = await read_packet(reader)
    if first != 0x20 or body[1] != 0:
        raise RuntimeError(f"{client_id}: CONNACK {body!r}")
    return reader, writer


class Peer:
    def __init__(self, port):
        self.port = port
        self.sent = 0
        self.acked = 0
        self.received = set()

    async def publisher(self, client_id, topic, interval_s, size, stop_at, offset):
        reader, writer = await mqtt_connect(self.port, client_id)
        pending = set()

        async def acks():
            while True:
                first, body = await read_packet(reader)
                if first >> 4 == 4:
                    pending.discard(struct.unpack("!H", body[:2])[0])
                    self.acked += 1

        ack_task = asyncio.ensure_future(acks())
        await asyncio.sleep(offset)
        seq = 0
        while time.monotonic() < stop_at:
            seq += 1
            packet_id = seq % 65535 + 1
            payload = f"{client_id}:{seq}:".encode().ljust(size, b"x")
            writer.write(mqtt_packet(0x32, mqtt_string(topic) + struct.pack("!H", packet_id)
                                     + payload))
            pending.add(packet_id)
            self.sent += 1
            await asyncio.sleep(interval_s)
        for _ in range(100):
            if not pending:
                break
            await asyncio.sleep(0.1)
        ack_task.cancel()
        writer.write(bytes([0xE0, 0]))
        writer.close()

    async def subscriber(self, ready):
        reader, writer = await mqtt_connect(self.port, "peer-sub")
        writer.write(mqtt_packet(0x82, struct.pack("!H", 1) + mqtt_string("#") + bytes([1])))
        ready.set_result(True)
        try:
            while True:  # until cancelled
                first, body = await read_packet(reader)
                if first >> 4 != 3:
                    continue
                topic_len = struct.unpack("!H", body[:2])[0]
                rest = body[2 + topic_len:]
                if (first >> 1) & 3:
                    writer.write(bytes([0x40, 2]) + rest[:2])
                    rest = rest[2:]
                client, seq = rest.split(b":", 2)[:2]
                self.received.add(client + b":" + seq)
        finally:
            writer.close()


async def peer_traffic(port, members, devices_per_member, duration_s):
    peer = Peer(port)
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    sub = asyncio.ensure_future(peer.subscriber(ready))
    await ready
    stop_at = time.monotonic() + duration_s
    tasks = []
    for m in range(members):
        for d in range(devices_per_member):
            tasks.append(peer.publisher(f"d{m}-{d}", f"/m{m}/device/d{d}/metrics/snapshot", 5.0,
                                        DEVICE_METRICS_BYTES, stop_at, 5.0 * len(tasks) / (
                                            members * devices_per_member)))
        tasks.append(peer.publisher(f"g{m}", f"/sun/m{m}/metrics/aggregate", 30.0,
                                    AGGREGATE_BYTES, stop_at, 30.0 * m / members))
    await asyncio.gather(*tasks)
    await asyncio.sleep(3)
    sub.cancel()
    try:
        await sub
    except asyncio.CancelledError:
        pass
    return peer


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_peer(members, duration_s, work):
    port = free_port()
    conf = work / "peer.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 100000\nlog_dest stderr\nlog_type error\n")
    os.chmod(work, 0o755)
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen([mosquitto, "-c", str(conf)], stderr=open(work / "peer.log", "w"))
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        cpu0, t0 = proc_cpu_s(broker.pid), time.monotonic()
        rss = []

        async def sample():
            while True:
                await asyncio.sleep(10)
                value = proc_rss_kb(broker.pid)
                if value:
                    rss.append(value)

        async def main():
            sampler = asyncio.ensure_future(sample())
            peer = await peer_traffic(port, members, sum(DEVICES.values()), duration_s)
            sampler.cancel()
            return peer

        peer = asyncio.run(main())
        cpu1, elapsed = proc_cpu_s(broker.pid), time.monotonic() - t0
    finally:
        broker.terminate()
        broker.wait(timeout=30)
    rss_kb = statistics.median(rss) if rss else proc_rss_kb(broker.pid) or 0
    return {
        "members": members,
        "devices": members * sum(DEVICES.values()),
        "duration_s": duration_s,
        "clients": members * (sum(DEVICES.values()) + 1) + 1,
        "sent": peer.sent,
        "acked": peer.acked,
        "received": len(peer.received),
        "lost": peer.sent - len(peer.received),
        "rss_mb": round(rss_kb / 1024, 1),
        "cpu_percent": round(100 * (cpu1 - cpu0) / elapsed, 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recmesh", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--members", type=int, action="append",
                        help="sizes to try, in order (default: 100 200 300 400; --quick 20)")
    parser.add_argument("--duration", type=int, help="seconds per size (default 600; quick 90)")
    parser.add_argument("--peer-duration", type=int, help="seconds of the peer (default 120)")
    args = parser.parse_args()
    sizes = args.members or ([20] if args.quick else [100, 200, 300, 400])
    duration = args.duration or (90 if args.quick else 600)
    peer_duration = args.peer_duration or (45 if args.quick else 120)
    work = pathlib.Path(tempfile.mkdtemp(prefix="recmesh-scale-"))
    os.chmod(work, 0o755)
    results = []
    try:
        for members in sizes:
            log(f"recmesh: {members} members x {sum(DEVICES.values())} devices, {duration} s")
            result = run_recmesh(pathlib.Path(args.recmesh).resolve(), members, duration, work)
            results.append(result)
            log(f"  sustained: {result['ok']}  lost {result.get('lost')}  "
                f"aggregates {result.get('metrics_received_by_ems')}/"
                f"{result.get('metrics_published')}  members {result.get('members_online')}/"
                f"{members}  devices {result.get('devices_online')}/{result.get('devices')}  "
                f"processes {result.get('processes')}  RSS {result.get('rss_mb_total')} MB  "
                f"PSS {result.get('pss_mb_total')} MB  "
                f"CPU {result.get('cpu_percent_total')} %")
            for kind, figures in result.get("kinds", {}).items():
                log(f"    {kind:<15} {figures['processes']:>5} processes  "
                    f"RSS median {figures['rss_kb_median'] / 1024:6.1f} MB  "
                    f"total {figures['rss_mb_total']:8.1f} MB  "
                    f"PSS median {figures['pss_kb_median'] / 1024:6.1f} MB  "
                    f"CPU {figures['cpu_percent_total']:6.2f} %")
            if not result["ok"]:
                break
        passed = [r for r in results if r["ok"]]
        best = passed[-1] if passed else results[-1]
        log(f"peer: plain Mosquitto, {best['members']} members' message rate, {peer_duration} s")
        peer = run_peer(best["members"], peer_duration, work)
        log(f"  sent {peer['sent']}  received {peer['received']}  lost {peer['lost']}  "
            f"RSS {peer['rss_mb']} MB  CPU {peer['cpu_percent']} %")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        "benchmark": "scale",
        "quick": args.quick,
        "members": best["members"] if passed else 0,
        "devices": best["devices"] if passed else 0,
        "lost": best.get("lost"),
        "sustained": bool(passed),
        "duration_s": duration,
        "rss_mb_per_member": best.get("rss_mb_per_member"),
        "rss_kb_per_device": best.get("rss_kb_per_device"),
        "cpu_percent_per_member": best.get("cpu_percent_per_member"),
        "rss_mb_total": best.get("rss_mb_total"),
        "pss_mb_per_member": best.get("pss_mb_per_member"),
        "pss_mb_total": best.get("pss_mb_total"),
        "cpu_percent_total": best.get("cpu_percent_total"),
        "processes": best.get("processes"),
        "startup_s": best.get("startup_s"),
        "rss_kb_by_kind": {k: v["rss_kb_median"] for k, v in best.get("kinds", {}).items()},
        "tried": [{"members": r["members"], "ok": r["ok"], "lost": r.get("lost")} for r in results],
        "peer": peer,
    }
    print(json.dumps(summary, separators=(",", ":")))


if __name__ == "__main__":
    sys.exit(main())
