#!/usr/bin/python3
"""report.py - turn one bench/run.sh work directory into bench/results/<stamp>.json, a Markdown
report <stamp>.md and gnuplot PNGs <stamp>-*.png (Debian's gnuplot-nox; without gnuplot the
report says so and has no plots). Standard library only.
Usage: bench/report.py WORK_DIR RESULTS_DIR STAMP
"""
import json
import os
import shutil
import subprocess
import sys


# Clustered bar charts (gnuplot histograms).
BARS = """
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set grid ytics
"""


LATENCY_FIX = """What is in the tail, and what is left. A shard loop never writes nor syncs: it
hands each validated batch to the env's writer thread (`pwrite`, in append order) and the
flusher thread (`fdatasync`, group commit: a batch arriving during a sync waits for that sync
and its own), and answers when they post back. So the acks=all tail is two fdatasync tails
plus queueing, and each ext4 stall of the flusher (data writeback, the inode write of the
extent map on this journal-less ext4, the device cache flush) lands on the requests behind it.
The acks=1 tail (no fdatasync wait) is the other half: the loops, the writer, the flusher and
the load driver share 2 cores, and the table above shows how long each thread waited runnable
for a CPU. Preallocating segments does not help here (measured: ext4 still writes the inode
for unwritten extents); what is left is CPU, not a blocking call on a loop."""


def thread_role(t):
    """A stratad thread's role in the produce path, from its name (offcpu.py's summary), else
    from where it blocked (older summaries without names)."""
    name = t.get("name", "")
    if name == "plog-flusher":
        return "flusher (fdatasync)"
    if name == "plog-writer":
        return "writer (segment pwrite)"
    if name.startswith("shard-"):
        return "shard loop %s" % name[len("shard-"):]
    return {"fsync": "flusher (fdatasync)", "writer": "writer (pwrite)"}.get(t["role"], "other")


COLD_FIX = """What was done and what is left (issue 17). The read-ahead keeps 3 windows ahead of a
sequential reader, the one it reads included (tier_rd.c, RD_DEPTH, when the chunk cache holds 6
windows per shard): with 16 MiB objects the GETs of objects N+1 and N+2 run while the reader is
in N, so the store is not idle while a finished object is verified, decoded and served.
Hydration's CPU work runs on its own worker pool (strata.hydration.threads), apart from
uploads' compression (strata.upload.threads). A download's waiters are answered as soon as its
chunks are verified (CRC-32C); the chunk cache files are written after that, by another pool
item, with O_DIRECT, and read back with it, so a replay neither waits for the cache nor fills
the page cache that the produce path and hot consumers use. The S3 test server, the broker and
the consumer share the same 2 cores (table above), so the ratio moves by +-0.2 between
minutes: compare the before/after rounds of bench/replay.sh with REPLAY_BASE, not single
figures. Produce during a cold replay (3b) loses to the same sharing: its broker stages put the
extra time in the queue (shard loop busy or without a CPU) and the ack (fdatasync behind the
replay's CPU and disk traffic); with the S3 server and the consumer at nice 19, stand-ins for
remote hosts, the p99 during the replay is lower in most rounds, and the target still missed."""

SCALE_FIX = """Each partition keeps one descriptor open per local segment (its .log; the
indexes live in memory), all opened at start-up, so partitions with many segments can need
more than this machine's hard limit (`ulimit -Hn`; the container cannot raise it). What
would fix it: open inactive partitions lazily (on first produce or fetch) and keep the
descriptors of idle sealed segments in a bounded LRU cache."""


def load_lines(path):
    if not os.path.exists(path):
        return []
    return [json.loads(x) for x in open(path) if x.strip().startswith("{")]


def text(path, default=""):
    return open(path).read().strip() if os.path.exists(path) else default


def fmt(x, nd=2):
    return "n/a" if x is None else ("%.*f" % (nd, x))


class Report:
    def __init__(self, work, res, stamp):
        self.w, self.res, self.stamp = work, res, stamp
        self.kafka = {r["scenario"]: r for r in load_lines(os.path.join(work, "kafka.jsonl"))}
        rl = load_lines(os.path.join(work, "replay.jsonl"))
        self.replay = rl[-1] if rl else None
        tl = load_lines(os.path.join(work, "tiering.json"))
        self.tier = tl[-1] if tl else None
        self.scale = load_lines(os.path.join(work, "scale.jsonl"))
        self.targets = []
        self.md = []
        self.plots = []

    # ---- data ----

    def target(self, name, value, target, met, note=""):
        self.targets.append({"scenario": name, "value": value, "target": target, "met": met,
                             "note": note})

    def collect(self):
        k = self.kafka
        for np in (1, 8):
            r = k.get("produce_acks_all_p%d" % np)
            if r:
                self.target("1. produce acks=all, %d partition(s): MB/s / fdatasync'd disk MB/s" % np,
                            r["ratio"], ">= 0.8", r["ratio"] >= 0.8)
        if self.replay:
            c = self.replay["cold_ratio_to_raw"]
            cf = self.replay.get("cold_fetch_ratio_to_raw")
            if cf is not None:  # judged on the raw driver, as hot consume (REPORT.md)
                self.target("3. cold replay from S3, empty cache: MB/s / raw ranged GET MB/s "
                            "(raw Fetch driver; librdkafka %.2f)" % c, cf, ">= 0.9", cf >= 0.9)
            else:
                self.target("3. cold replay from S3, empty cache: MB/s / raw ranged GET MB/s", c,
                            ">= 0.9", c >= 0.9)
            lat = self.replay.get("lat")
            if lat and lat.get("p99_ratio") is not None:
                ln = self.replay.get("lat_peers_niced")
                self.target("3b. produce p99 during a cold replay / the same produce alone" +
                            (" (S3 server and consumer at nice %d: %s)"
                             % (ln["peer_nice"], ln["p99_ratio"]) if ln else ""),
                            lat["p99_ratio"], "<= 1.5", lat["p99_ratio"] <= 1.5)
        if self.tier:
            self.target("4. upload lag with tiering on stays bounded and drains",
                        self.tier["max_lag_bytes"] / 2**20, "bounded", self.tier["bounded"],
                        "max lag in MiB")
        lat = k.get("produce_latency_50pct")
        if lat:
            self.target("5. produce p99 at 50% of max / one write+fdatasync", lat["ratio"], "<= 3",
                        lat["ratio"] <= 3)

    # ---- plots ----

    def gnuplot(self, name, script, data):
        if not shutil.which("gnuplot"):
            return None
        png = "%s-%s.png" % (self.stamp, name)
        dat = os.path.join(self.w, name + ".dat")
        with open(dat, "w") as f:
            f.write(data)
        full = ('set terminal pngcairo noenhanced size 900,520 font "DejaVu Sans,10"\n'
                'set output "%s"\n' % os.path.join(self.res, png)) + script.replace("DAT", dat)
        try:
            subprocess.run(["gnuplot"], input=full.encode(), check=True, timeout=60,
                           stderr=subprocess.PIPE)
        except (subprocess.SubprocessError, OSError) as e:
            print("report.py: gnuplot %s failed: %s" % (name, e), file=sys.stderr)
            return None
        self.plots.append(png)
        return png

    def plot_throughput(self):
        k, rows = self.kafka, []
        for np in (1, 8):
            p, m = k.get("produce_acks_all_p%d" % np), k.get("mock_produce_p%d" % np)
            if p:
                rows.append(('"produce p%d"' % np, p["result"]["mb_per_s"],
                             m["result"]["mb_per_s"] if m else 0, p["limit"]["mb_per_s"]))
        for np in (1, 8):
            c, m = k.get("consume_hot_p%d" % np), k.get("mock_consume_p%d" % np)
            if c:
                rows.append(('"hot consume p%d"' % np, c["result"]["mb_per_s"],
                             m["result"]["mb_per_s"] if m else 0, c["limit"]["mb_per_s"]))
        if self.replay:
            r = self.replay
            rows.append(('"cold replay"', r["cold_mb_per_s"], 0, r["raw_get_mb_per_s"]))
            rows.append(('"warm replay"', r["warm_mb_per_s"], 0, r["hot_mb_per_s"]))
        data = "".join("%s %.1f %.1f %.1f\n" % row for row in rows)
        return self.gnuplot("throughput", BARS + """
set title "Throughput (MB/s): Strata, librdkafka mock cluster, and this machine's limit"
set ylabel "MB/s"
set key below
set xtics rotate by -20
plot "DAT" using 2:xtic(1) title "Strata", "" using 3 title "mock cluster (peer)", \\
     "" using 4 title "limit (disk / loopback / raw GET / hot)"
""", data)

    def plot_lag(self):
        csv = os.path.join(self.w, "tiering.csv")
        if not os.path.exists(csv) or not self.tier:
            return None
        rows = [l.split(",") for l in open(csv).read().splitlines()[1:]]
        data = "".join("%s %.3f %s %s\n" % (r[0], int(r[1]) / 2**20, r[2],
                                            "%.3f" % (int(r[3]) / 2**20) if r[3] else "NaN")
                       for r in rows)
        return self.gnuplot("upload-lag", """
set title "Scenario 4: upload lag with tiering on (sealed local segments not yet in the archive)"
set xlabel "seconds since the load started"
set ylabel "lag (MiB)"
set y2label "lag (segments)"
set ytics nomirror
set y2tics
set grid
set key below
set arrow from %s, graph 0 to %s, graph 1 nohead dt 2
set label "load ends " at %s, graph 0.5 right
set datafile missing "NaN"
plot "DAT" using 1:2 with steps lw 2 title "lag MiB (data dir vs remote index)", \\
     "" using 1:4 with steps lw 1 title "lag MiB (admin API upload_lag_bytes)", \\
     "" using 1:3 axes x1y2 with points pt 7 ps 0.4 title "lag segments"
""" % ((self.tier["seconds"],) * 3), data)

    def plot_latency(self):
        k = self.kafka
        lat = k.get("produce_latency_50pct")
        if not lat:
            return None
        r, fl, m = lat["result"], lat.get("acks1_floor"), k.get("mock_latency_50pct")
        rows = [('"strata acks=all"', r["p50_ms"], r["p99_ms"], r["p999_ms"])]
        if fl:
            rows.append(('"strata acks=1"', fl["p50_ms"], fl["p99_ms"], fl["p999_ms"]))
        if m:
            mr = m["result"]
            rows.append(('"mock acks=all"', mr["p50_ms"], mr["p99_ms"], mr["p999_ms"]))
        ref = lat["limit"]["write_sync_lat_ms"]
        data = "".join("%s %.3f %.3f %.3f\n" % row for row in rows)
        return self.gnuplot("latency", BARS + """
set title "Scenario 5: produce latency at %d records/s (50%% of max), 1 KiB records"
set logscale y
set ylabel "ms (log)"
set yrange [0.01:*]
plot "DAT" using 2:xtic(1) title "p50", "" using 3 title "p99", "" using 4 title "p999", \\
     %.4f with lines lw 2 dt 2 title "one write+fdatasync", %.4f with lines lw 1 title "3x target"
""" % (r["rate"], ref, 3 * ref), data)

    def plot_scale(self):
        rows = [x for x in self.scale if x.get("live")]
        if len(rows) < 2:
            return None
        data = ""
        for x in rows:
            r = x.get("restarted") or {}
            data += "%d %s %.1f %.3f %s\n" % (
                max(x["partitions"], 1), "%.3f" % x["start_s"] if x["start_s"] is not None else "NaN",
                x["live"]["rss_kb_after_metadata"] / 1024, x["live"]["metadata"]["p99_ms"],
                "%.1f" % (r["rss_kb_after_metadata"] / 1024) if r else "NaN")
        return self.gnuplot("scale", """
set title "Scenario 6: partitions vs start time, RSS and Metadata p99 (empty broker at x=1)"
set xlabel "partitions"
set logscale x
set xrange [0.7:15000]
set ylabel "start s / metadata p99 ms"
set y2label "RSS MiB"
set ytics nomirror
set y2tics
set grid
set datafile missing "NaN"
set key top left
plot "DAT" using 1:2 with linespoints lw 2 pt 7 title "start after restart (s)", \\
     "" using 1:4 with linespoints lw 2 pt 5 title "metadata p99, live (ms)", \\
     "" using 1:3 axes x1y2 with linespoints lw 2 pt 9 title "RSS live (MiB)", \\
     "" using 1:5 axes x1y2 with linespoints lw 1 pt 6 title "RSS after restart (MiB)"
""", data)

    # ---- Markdown ----

    def p(self, s=""):
        self.md.append(s)

    def img(self, png, alt):
        if png:
            self.p("![%s](%s)" % (alt, png))
            self.p()

    def write_md(self):
        k, w = self.kafka, self.w
        disk = next((r["limit"] for r in k.values() if r["scenario"] == "produce_acks_all_p1"), None)
        loop = next((r["limit"] for r in k.values() if r["scenario"] == "consume_hot_p1"), None)
        self.p("# Strata benchmark report %s" % self.stamp)
        self.p()
        self.p("`make bench` on this machine: git %s%s, %s cores, %s. Load average %s at the "
               "start, %s at the end (other engineers' builds and tests share the machine). "
               "Whole run: %s s. Every figure is a ratio to a limit measured in this run."
               % (text(os.path.join(w, "git")),
                  " (+%s uncommitted files of others in the tree)" % text(os.path.join(w, "git_dirty"))
                  if text(os.path.join(w, "git_dirty"), "0") != "0" else "",
                  os.cpu_count(), text(os.path.join(w, "uname")).split(" ")[2] if
                  text(os.path.join(w, "uname")) else "", text(os.path.join(w, "load_start")),
                  text(os.path.join(w, "load_end")), text(os.path.join(w, "elapsed_s"))))
        self.p()
        self.p("## Targets")
        self.p()
        self.p("| scenario | ratio / value | target | met |")
        self.p("|---|---|---|---|")
        for t in self.targets:
            v = t["value"]
            vs = ("%.2f" % v) if isinstance(v, float) else str(v)
            if t["note"]:
                vs += " (%s)" % t["note"]
            self.p("| %s | %s | %s | %s |" % (t["scenario"], vs, t["target"],
                                              "yes" if t["met"] else "**NO**"))
        self.p()
        self.p("## Limits measured in this run")
        self.p()
        if disk:
            self.p("- fdatasync'd sequential writes (%s, %d B write + fdatasync): **%.1f MB/s**, "
                   "one write+fdatasync %.3f ms (fdatasync p50 %s ms, p99 %s ms)"
                   % (disk["tool"], disk["write_bytes"], disk["mb_per_s"],
                      disk["write_sync_lat_ms"], fmt(disk.get("sync_p50_ms"), 3),
                      fmt(disk.get("sync_p99_ms"), 3)))
        if loop:
            self.p("- loopback TCP (%s): **%.1f MB/s**" % (loop["tool"], loop["mb_per_s"]))
        if self.replay:
            self.p("- raw sequential 16 MiB ranged GETs from the S3 test server (curl): **%.1f MB/s**"
                   % self.replay["raw_get_mb_per_s"])
        self.p()
        self.img(self.plot_throughput(), "throughput")
        self.scenario_md()
        self.p("## Engine probes (bench/log_append, bench/sync_overlap)")
        self.p()
        self.p("```")
        self.p(text(os.path.join(w, "log_append.txt")))
        if os.path.exists(os.path.join(w, "sync_overlap.txt")):
            self.p(text(os.path.join(w, "sync_overlap.txt")))
        self.p("```")
        self.p()
        self.p("## write.caching=false vs true, acks=all, 1 partition (bench/write_caching.sh)")
        self.p()
        self.p("Same broker, alternating runs; the median round of each setting. false: every "
               "acknowledged batch was fdatasync'd first; true: acknowledged from the page cache, "
               "synced by flush.ms / flush.bytes (a power cut may lose that window).")
        self.p()
        self.p("```")
        self.p(text(os.path.join(w, "write_caching.txt"), "(not run)"))
        self.p("```")
        self.p()
        self.p("## Strata vs Apache Kafka and the mock cluster (bench/peers.sh)")
        self.p()
        self.p("One broker at a time, the same scenarios with two load drivers (`strata bench`, "
               "and Kafka's kafka-producer-perf-test / kafka-consumer-perf-test). kafka-flush: "
               "log.flush.interval.messages=1 (every batch fsynced before its ack, Strata's "
               "promise); kafka-default: page cache only. Ratios are Strata / peer: above 1 "
               "Strata is faster for MB/s, below 1 it is faster for latencies.")
        self.p()
        self.p("```")
        self.p(text(os.path.join(w, "peers.txt"), "(not run)"))
        self.p("```")
        self.p()
        self.p("## The run's own table (bench/kafka.sh)")
        self.p()
        self.p("```")
        self.p(text(os.path.join(w, "kafka.txt")))
        self.p("```")
        self.p()
        self.missed_md()

    def scenario_md(self):
        k = self.kafka
        self.p("## 1. Produce acks=all, 1 KiB records, max rate")
        self.p()
        for np in (1, 8):
            r = k.get("produce_acks_all_p%d" % np)
            if not r:
                continue
            x, m = r["result"], k.get("mock_produce_p%d" % np)
            self.p("- %d partition(s): %.1f MB/s (%.0f records/s), ratio to disk **%.2f** (target "
                   ">= 0.8); %s fdatasyncs, %s B per fdatasync%s; mock cluster %s MB/s"
                   % (np, x["mb_per_s"], x["records_per_s"], r["ratio"], r.get("fdatasyncs"),
                      r.get("bytes_per_fdatasync", "n/a"),
                      "; vs disk at that sync size %.2f" % r["ratio_to_disk_at_sync_size"]
                      if "ratio_to_disk_at_sync_size" in r else "",
                      fmt(m["result"]["mb_per_s"], 1) if m else "n/a"))
        self.p()
        self.p("## 2. Hot consume (page cache)")
        self.p()
        for np in (1, 8):
            r = k.get("consume_hot_p%d" % np)
            if r:
                m = k.get("mock_consume_p%d" % np)
                self.p("- %d partition(s): %.1f MB/s, ratio to loopback **%.2f**; mock cluster %s MB/s "
                       "(the mock keeps ~5 MB per partition and was read repeatedly)"
                       % (np, r["result"]["mb_per_s"], r["ratio"],
                          fmt(m["result"]["mb_per_s"], 1) if m else "n/a"))
            f = k.get("fetch_hot_p%d" % np)
            if f:
                self.p("  - same data, raw Fetch driver (`strata bench fetch`: batch level, no "
                       "per-record work; MB/s of record batches): %.1f MB/s, ratio to loopback "
                       "**%.2f**; %.2f x the records/s of `bench consume`"
                       % (f["result"]["mb_per_s"], f["ratio"], f["fetch_over_consume_records"]))
        self.p()
        self.p("## 3. Replay from the S3 test server")
        self.p()
        if self.replay:
            r = self.replay
            self.p("- cold (cache deleted): %.1f MB/s of records, ratio to raw ranged GET **%.2f** "
                   "(target >= 0.9); object bytes %.1f MB/s (ratio %.2f); %d GETs, %d read-ahead"
                   % (r["cold_mb_per_s"], r["cold_ratio_to_raw"], r["cold_object_mb_per_s"],
                      r["cold_object_ratio_to_raw"], r["cold_gets"], r["cold_readahead_gets"]))
            if r.get("cold_fetch_mb_per_s") is not None:
                self.p("  - same replay, raw Fetch driver (`strata bench fetch`: batch level, no "
                       "per-record work): %.1f MB/s, ratio to raw ranged GET **%.2f**"
                       % (r["cold_fetch_mb_per_s"], r["cold_fetch_ratio_to_raw"]))
            ahead = r.get("warm_cache_ahead_hits")
            self.p("- warm (cache kept): %.1f MB/s, %d GETs, %d cache hits%s; ratio to the same "
                   "data read from the local log (hot, %.1f MB/s): %.2f"
                   % (r["warm_mb_per_s"], r["warm_gets"], r["warm_cache_hits"],
                      " (%d of them read ahead of the reader)" % ahead if ahead is not None else "",
                      r["hot_mb_per_s"], r["warm_ratio_to_hot"]))
            lat = r.get("lat")
            if lat:
                self.p("- produce during a cold replay (1 KiB incompressible records, acks=all, linger "
                       "0, %d records/s): p99 %.2f ms alone, %.2f ms during the replay (%.1f MB/s, "
                       "overlapping %.0f%% of the produce): ratio **%s** (target <= 1.5)"
                       % (lat["alone"]["rate"], lat["alone"]["p99_ms"], lat["during"]["p99_ms"],
                          lat["replay_mb_per_s"], 100 * lat["overlap"], lat["p99_ratio"]))
            ln = r.get("lat_peers_niced")
            if ln:
                self.p("  - the same with the S3 server and the consumer at nice %d (stand-ins for "
                       "remote hosts, which take no CPU of the broker's): p99 %.2f ms alone, %.2f "
                       "ms during (%.1f MB/s, overlapping %.0f%%): ratio **%s**"
                       % (ln["peer_nice"], ln["alone"]["p99_ms"], ln["during"]["p99_ms"],
                          ln["replay_mb_per_s"], 100 * ln["overlap"], ln["p99_ratio"]))
        else:
            self.p("- not measured (replay.sh failed; see the run log)")
        self.p()
        self.p("## 4. Sustained produce with tiering on: upload lag")
        self.p()
        t = self.tier
        if t:
            pr = t["produce"]
            self.p("- %.1f MB/s of incompressible 1 KiB records (acks=1) for %.0f s into 2 partitions, "
                   "%d MiB segments, S3 archive: %d segments uploaded; lag max %.1f MiB (%d segments), "
                   "mean %.1f MiB; max in the first half %.1f MiB, second half %.1f MiB; drained %s "
                   "%s; **bounded: %s**"
                   % (pr["mb_per_s"], t["seconds"], t["segment_bytes"] // 2**20,
                      t["uploaded_segments"], t["max_lag_bytes"] / 2**20, t["max_lag_segments"],
                      t["mean_lag_bytes"] / 2**20, t["max_lag_first_half"] / 2**20,
                      t["max_lag_second_half"] / 2**20, "yes" if t["drained"] else "NO",
                      "(%s s after the load)" % t["drain_s"] if t["drained"] else "",
                      "yes" if t["bounded"] else "NO"))
            am = t.get("admin_max_lag_bytes")
            self.p("- lag = sealed local segments not yet in remote-index.db, read from the data "
                   "directory; the broker's own `upload_lag_bytes` (admin API GET /v1/storage) "
                   "peaked at %s" % ("%.1f MiB" % (am / 2**20) if am is not None else "n/a (null)"))
        self.p()
        self.img(self.plot_lag(), "upload lag")
        self.p("## 5. Produce latency at 50% of max throughput")
        self.p()
        lat = k.get("produce_latency_50pct")
        if lat:
            r, fl = lat["result"], lat.get("acks1_floor")
            m = k.get("mock_latency_50pct")
            self.p("- acks=all, 1 partition, %d records/s, linger 0: p50 %.2f ms, p99 %.2f ms, p999 "
                   "%.2f ms, max %.2f ms (median p99 of %d runs: %s ms)%s"
                   % (r["rate"], r["p50_ms"], r["p99_ms"], r["p999_ms"], r["max_ms"],
                      len(lat["runs"]), " / ".join("%.1f" % x["p99_ms"] for x in lat["runs"]),
                      " OVERLOADED" if lat["overloaded"] else ""))
            self.p("- one write+fdatasync of a batch: %.3f ms: p99 ratio **%.1f** (target <= 3)"
                   % (lat["limit"]["write_sync_lat_ms"], lat["ratio"]))
            if fl:
                self.p("- same load with acks=1 (no fdatasync wait): p50 %.2f, p99 %.2f, p999 %.2f ms"
                       % (fl["p50_ms"], fl["p99_ms"], fl["p999_ms"]))
            if m:
                mr = m["result"]
                self.p("- librdkafka mock cluster, same load: p50 %.2f, p99 %.2f, p999 %.2f ms"
                       % (mr["p50_ms"], mr["p99_ms"], mr["p999_ms"]))
        self.p()
        self.img(self.plot_latency(), "latency")
        self.p("## 6. Scale: partitions")
        self.p()
        if self.scale:
            self.p("| partitions | logs on disk | create+fill s | live: RSS MiB | live: open fds "
                   "| live: metadata p50 / p99 ms | restart: start s | restart: RSS MiB "
                   "| restart: metadata p50 / p99 ms |")
            self.p("|---|---|---|---|---|---|---|---|---|")
            for x in self.scale:
                lv, r = x["live"], x.get("restarted")
                self.p("| %d | %d | %.2f | %.1f | %d | %.2f / %.2f | %s | %s | %s |" % (
                    x["partitions"], x["partition_dirs"], x["create_and_fill_s"],
                    lv["rss_kb_after_metadata"] / 1024, lv["open_fds"], lv["metadata"]["p50_ms"],
                    lv["metadata"]["p99_ms"],
                    "%.2f" % x["start_s"] if x["start_s"] is not None else "**failed**",
                    "%.1f" % (r["rss_kb_after_metadata"] / 1024) if r else "-",
                    "%.2f / %.2f" % (r["metadata"]["p50_ms"], r["metadata"]["p99_ms"]) if r else "-"))
            self.p()
            for x in self.scale:
                if x.get("start_error"):
                    self.p("- %d partitions: the restart failed (`ulimit -n` %d): `%s`"
                           % (x["partitions"], x["nofile_limit"], x["start_error"]))
            self.p()
        self.img(self.plot_scale(), "scale")
        self.p("## 7. CPU: cycles per produced byte")
        self.p()
        for np in (1, 8):
            c = k.get("cpu_produce_p%d" % np)
            if c:
                self.p("- produce acks=all, %d partition(s): **%.2f cycles/B** (stratad %.2f CPU-s for "
                       "%.0f MB; %s; the VM exposes no PMU, so `perf stat -e cycles` is not supported)"
                       % (np, c["cycles_per_byte"], c["cpu_s"],
                          c["result"]["records"] * c["result"]["record_bytes"] / 1e6,
                          c["result"]["method"]))
        self.p()

    def missed_md(self):
        missed = [t for t in self.targets if not t["met"]]
        self.p("## Missed targets: where the time goes, what would fix it")
        self.p()
        if not missed:
            self.p("No target missed in this run.")
            self.p()
        for t in missed:
            self.p("- %s: %s (target %s)" % (t["scenario"], fmt(t["value"]) if isinstance(
                t["value"], float) else t["value"], t["target"]))
        self.p()
        lat = self.kafka.get("produce_latency_50pct")
        if lat and not lat["met"]:
            self.latency_md(lat)
        if self.replay and self.replay["cold_ratio_to_raw"] < 0.9:
            self.cold_md(self.replay)
        failed = [x for x in self.scale if x.get("start_error")]
        if failed:
            self.scale_md(failed)

    def latency_md(self, lat):
        perf = os.path.join(self.w, "perf")
        r, ref = lat["result"], lat["limit"]
        self.p("### Produce latency (scenario 5)")
        self.p()
        sp99 = ref.get("sync_p99_ms")
        fl = lat.get("acks1_floor")
        mock = self.kafka.get("mock_latency_50pct")
        self.p("p99 %.2f ms is %.1fx the mean write+fdatasync of one batch (%.3f ms)%s. The same "
               "load has p99 %s ms with acks=1 (no fdatasync wait) and %s ms against the "
               "librdkafka mock cluster (same client, same machine)."
               % (r["p99_ms"], lat["ratio"], ref["write_sync_lat_ms"],
                  "; against the disk's own fdatasync p99 (%.2f ms) it is %.1fx" %
                  (sp99, r["p99_ms"] / sp99) if sp99 else "",
                  fmt(fl["p99_ms"]) if fl else "n/a",
                  fmt(mock["result"]["p99_ms"]) if mock else "n/a"))
        if fl:
            share = fl["p99_ms"] / r["p99_ms"]
            if share < 0.5:
                self.p("The acks=1 tail is %.0f%% of the acks=all one: most of the tail is the wait "
                       "for durability." % (100 * share))
            else:
                self.p("The acks=1 tail is %.0f%% of the acks=all one: much of the tail is not "
                       "fdatasync but the broker not getting a CPU or its loop stalling (see the "
                       "shard thread below), on a machine whose load average went from %s to %s "
                       "on 2 cores." % (100 * share, text(os.path.join(self.w, "load_start")),
                                        text(os.path.join(self.w, "load_end"))))
        self.p()
        pr = lat.get("profiled_run")
        summ = os.path.join(perf, "latency-offcpu.json")
        if os.path.exists(summ):
            js = json.load(open(summ))
            self.p("An extra acks=all run at the same rate under perf record (p99 %s ms; profiling "
                   "costs CPU) shows, over %.1f s of scheduler events (off-CPU time per stratad "
                   "thread; D = uninterruptible wait, R = runnable but preempted):"
                   % (fmt(pr["p99_ms"]) if pr else "n/a", js["span_s"]))
            self.p()
            self.p("| thread | role | off-CPU ms | D in write()/pwrite() ms | longest write block ms "
                   "| D in fdatasync ms | longest fdatasync block ms | runnable (preempted) ms |")
            self.p("|---|---|---|---|---|---|---|---|")
            for t in js["threads"]:
                if thread_role(t) == "other" and t["off_cpu_ms"] < 1:
                    continue
                self.p("| %d | %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f |" % (
                    t["tid"], thread_role(t), t["off_cpu_ms"], t["write_d_ms"], t["max_write_block_ms"],
                    t["sync_d_ms"], t["max_sync_block_ms"], t["runnable_ms"]))
            self.p()
            for t in js["threads"]:
                if thread_role(t) != "other" and t["runnable_ms"] > 0.1 * js["span_s"] * 1000:
                    self.p("The %s thread was runnable but had no CPU for %.0f ms of %.0f s "
                           "(%.0f%%): the client, the broker's threads and other processes share "
                           "2 cores." % (thread_role(t), t["runnable_ms"], js["span_s"],
                                         100 * t["runnable_ms"] / (js["span_s"] * 1000)))
                    self.p()
            for t in js["threads"]:
                if thread_role(t) != "other" and t["top"]:
                    self.p("- %s thread %d, top waits: %s" % (thread_role(t), t["tid"], "; ".join(
                        "%s %.0f ms in `%s`" % (x["state"], x["ms"], x["stack"].split(" <- ")[0]
                                                 + " <- " + " <- ".join(
                                                     x["stack"].split(" <- ")[1:4]))
                        for x in t["top"][:4])))
            self.p()
        trace = os.path.join(perf, "latency-syscalls.txt")
        if os.path.exists(trace):
            dst = "%s-perf-latency-syscalls.txt" % self.stamp
            shutil.copy(trace, os.path.join(self.res, dst))
            lines = open(trace).read().splitlines()
            summary = [l for l in lines if l.strip() and not l.lstrip()[:1].isdigit()]
            tr = lat.get("traced_run")
            self.p("perf trace of a second extra run (p99 %s ms), write/fdatasync system calls per "
                   "thread (every call of 5 ms or more is listed in [%s](%s)):"
                   % (fmt(tr["p99_ms"]) if tr else "n/a", dst, dst))
            self.p()
            self.p("```")
            self.p("\n".join(summary[-40:]))
            self.p("```")
            self.p()
        for name, title in (("latency-offcpu.txt", "off-CPU stacks"),
                            ("latency-oncpu.txt", "on-CPU samples (cpu-clock)")):
            src = os.path.join(perf, name)
            if os.path.exists(src):
                dst = "%s-perf-%s" % (self.stamp, name)
                shutil.copy(src, os.path.join(self.res, dst))
                self.p("- %s: [%s](%s)" % (title, dst, dst))
        self.p()
        self.p(LATENCY_FIX)
        self.p()

    def cold_md(self, r):
        self.p("### Cold replay (scenario 3)")
        self.p()
        raw, cold = r.get("raw_cpu"), r.get("cold_cpu")
        if raw and cold:
            def busy(c, k):
                return 100 * c[k] / c["seconds"] if c["seconds"] else 0
            self.p("Who used the 2 cores (CPU seconds over the phase; 100% = one core busy):")
            self.p()
            self.p("| phase | seconds | S3 server | stratad | whole machine |")
            self.p("|---|---|---|---|---|")
            for name, c in (("raw ranged GETs (curl)", raw), ("cold replay", cold)):
                self.p("| %s | %.2f | %.2f s (%.0f%%) | %.2f s (%.0f%%) | %.2f s (%.0f%% of 200%%) |"
                       % (name, c["seconds"], c["s3server_cpu_s"], busy(c, "s3server_cpu_s"),
                          c["stratad_cpu_s"], busy(c, "stratad_cpu_s"), c["machine_busy_s"],
                          busy(c, "machine_busy_s")))
            self.p()
            mach = busy(cold, "machine_busy_s")
            self.p("The S3 test server is one Node.js process: during the raw GETs it is the "
                   "bottleneck at about one core (%.0f%%). During the cold replay it does the same "
                   "work but is busy only %.0f%% of the time: the broker leaves it idle between "
                   "ranged GETs (%d GETs, %d of them read-ahead). %s"
                   % (busy(raw, "s3server_cpu_s"), busy(cold, "s3server_cpu_s"), r["cold_gets"],
                      r["cold_readahead_gets"],
                      "The machine is far from saturated (%.0f%% of 200%%): the replay waits on "
                      "GETs, it does not compute." % mach if mach < 110 else
                      "The machine is busy too (%.0f%% of 200%%): the server, the broker (%.0f%%) "
                      "and the consumer share 2 cores, so idle gaps and CPU both cost."
                      % (mach, busy(cold, "stratad_cpu_s"))))
            self.p()
        perf = os.path.join(self.w, "perf")
        oncpu = os.path.join(perf, "cold-oncpu.txt")
        if os.path.exists(oncpu):
            rows = [l for l in open(oncpu).read().splitlines() if "%" in l and ":" in l
                    and not l.startswith("#")]
            per_sym = [l for l in rows if "[" in l][:10]
            if per_sym:
                self.p("Where stratad's CPU goes during the cold replay (perf, on-CPU samples: "
                       "thread, object, symbol):")
                self.p()
                self.p("```")
                self.p("\n".join(per_sym))
                self.p("```")
                self.p()
        for name, title in (("cold-oncpu.txt", "on-CPU samples per thread and symbol"),
                            ("cold-offcpu.txt", "off-CPU stacks")):
            src = os.path.join(perf, name)
            if os.path.exists(src):
                dst = "%s-perf-%s" % (self.stamp, name)
                shutil.copy(src, os.path.join(self.res, dst))
                self.p("- perf of stratad during the cold replay, %s: [%s](%s)" % (title, dst, dst))
        self.p()
        self.p(COLD_FIX)
        self.p()

    def scale_md(self, failed):
        self.p("### 10,000 partitions (scenario 6)")
        self.p()
        for x in failed:
            self.p("With %d partitions the broker ran (%d descriptors open, the limit) but could "
                   "not restart: `%s`." % (x["partitions"], x["live"]["open_fds"],
                                           x["start_error"].split("stratad: ", 1)[-1]))
        self.p()
        self.p(SCALE_FIX)
        if any(":  (" in x["start_error"] for x in failed):
            self.p("One start-up error came with an empty message (`shard cannot start:  (too "
                   "many open files)`): the path that failed is not named.")
        self.p()

    def write(self):
        self.collect()
        self.write_md()
        out = {"stamp": self.stamp, "git": text(os.path.join(self.w, "git")),
               "nproc": os.cpu_count(), "loadavg_start": text(os.path.join(self.w, "load_start")),
               "loadavg_end": text(os.path.join(self.w, "load_end")),
               "elapsed_s": int(text(os.path.join(self.w, "elapsed_s"), "0")),
               "targets": self.targets, "kafka": self.kafka, "replay": self.replay,
               "tiering": self.tier, "scale": self.scale, "plots": self.plots,
               "log_append": text(os.path.join(self.w, "log_append.txt")),
               "sync_overlap": text(os.path.join(self.w, "sync_overlap.txt")),
               "write_caching": load_lines(os.path.join(self.w, "write_caching.jsonl")),
               "peers": load_lines(os.path.join(self.w, "peers.jsonl"))}
        with open(os.path.join(self.res, self.stamp + ".json"), "w") as f:
            json.dump(out, f, indent=1, sort_keys=True)
            f.write("\n")
        md = "\n".join(self.md) + "\n"
        with open(os.path.join(self.res, self.stamp + ".md"), "w") as f:
            f.write(md)


if __name__ == "__main__":
    Report(*sys.argv[1:4]).write()
