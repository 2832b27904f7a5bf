package main

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/daemon"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var (
	idleHosts  = flag.Int("idle.hosts", 20, "BenchmarkIdleAgent: agents in the cluster")
	idleWindow = flag.Duration("idle.window", 2*time.Minute, "BenchmarkIdleAgent: how long to watch the idle cluster")
)

// BenchmarkIdleAgent starts -idle.hosts real agent processes on loopback
// with production timing (cluster.profile lan, poll_interval 30s, one
// application), lets them install revision 1, waits until every agent sees
// every other alive, then watches the cluster idle for -idle.window and
// reports one agent's peak RSS and CPU share (from /proc), the mean over
// all agents, and gossip payload bytes per second per agent (from
// /metrics). DESIGN.md §14's target: RSS ≤ 30 MB, CPU ≤ 1% of a core.
// Run it once: go test ./cmd/drover -run '^$' -bench IdleAgent -benchtime 1x
func BenchmarkIdleAgent(b *testing.B) {
	n := *idleHosts
	f := newFleetWith(b, n, "one-at-a-time", fleetOpts{profile: "lan", poll: "30s"})
	f.waitFor(0, 5*time.Minute, "v1 everywhere", allOn(n, "v1"))
	for i := range f.agents {
		f.waitFor(i, 2*time.Minute, "every member alive", func(st *daemon.Status) bool { return aliveMembers(st) == n })
	}
	b.ResetTimer()
	for b.Loop() {
		type sample struct {
			cpu   float64 // seconds of user+system time
			bytes float64 // gossip payload bytes sent+received
		}
		take := func() ([]sample, []float64) {
			ss, rss := make([]sample, n), make([]float64, n)
			for i, a := range f.agents {
				pid := a.cmd.Process.Pid
				cpu, err := procCPU(pid)
				if err != nil {
					b.Fatal(err)
				}
				if rss[i], err = procRSS(pid); err != nil {
					b.Fatal(err)
				}
				ss[i] = sample{cpu: cpu, bytes: gossipBytes(b, a.metrics)}
			}
			return ss, rss
		}
		start := time.Now()
		first, _ := take()
		peak := make([]float64, n)
		for time.Since(start) < *idleWindow {
			time.Sleep(5 * time.Second)
			_, rss := take()
			for i := range peak {
				peak[i] = max(peak[i], rss[i])
			}
		}
		last, rss := take()
		secs := time.Since(start).Seconds()
		pick := n / 2 // not the seed
		var cpuSum, rssSum, bytesSum float64
		for i := range last {
			cpuSum += (last[i].cpu - first[i].cpu) / secs
			rssSum += rss[i]
			bytesSum += (last[i].bytes - first[i].bytes) / secs
		}
		b.ReportMetric(peak[pick]/1e6, "rss-peak-MB")
		b.ReportMetric(100*(last[pick].cpu-first[pick].cpu)/secs, "cpu-%")
		b.ReportMetric(rssSum/float64(n)/1e6, "rss-mean-MB")
		b.ReportMetric(100*cpuSum/float64(n), "cpu-mean-%")
		b.ReportMetric(bytesSum/float64(n), "gossip-B/s/agent")
		b.ReportMetric(secs, "window-s")
	}
}

// procCPU is a process's user+system CPU time in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command (which may hold spaces) start after ") ".
	s := string(b)
	fs := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fs) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fs))
	}
	utime, err1 := strconv.ParseFloat(fs[11], 64)
	stime, err2 := strconv.ParseFloat(fs[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, fs[11], fs[12])
	}
	const clkTck = 100 // USER_HZ on Linux
	return (utime + stime) / clkTck, nil
}

// procRSS is a process's resident set in bytes.
func procRSS(pid int) (float64, error) {
	fh, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// gossipBytes scrapes drover_gossip_bytes_total (both directions).
func gossipBytes(b *testing.B, addr string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		b.Fatalf("scrape %s: %v", addr, err)
	}
	var sum float64
	for _, m := range mfs["drover_gossip_bytes_total"].GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum
}
