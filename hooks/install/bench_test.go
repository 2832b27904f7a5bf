package install

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/hooks/appspec"
)

const (
	benchFiles = 10_000
	benchBytes = 200 << 20
)

// makeBenchBundle writes benchFiles files totalling benchBytes in 100
// directories, sizes spread from a few hundred bytes to a few hundred KB
// (seeded), and a tar of them.
func makeBenchBundle(b *testing.B, dir string) (bundle, tarball string) {
	b.Helper()
	bundle = filepath.Join(dir, "bundle")
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := make([]int, benchFiles)
	total := 0
	for i := range sizes {
		// Exponential-ish: many small files, a few large ones.
		sizes[i] = 256 + int(rng.ExpFloat64()*float64(benchBytes/benchFiles))
		total += sizes[i]
	}
	// Scale to the exact total.
	scaled := 0
	for i := range sizes {
		sizes[i] = sizes[i] * (benchBytes / 1024) / (total / 1024)
		scaled += sizes[i]
	}
	sizes[0] += benchBytes - scaled
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	for i, n := range sizes {
		p := filepath.Join(bundle, fmt.Sprintf("d%02d/f%05d.dat", i%100, i))
		if i < 100 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		for n > 0 {
			m := min(n, len(buf))
			off := rng.IntN(len(buf) - m + 1)
			if _, err := f.Write(buf[off : off+m]); err != nil {
				b.Fatal(err)
			}
			n -= m
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bundle, "appspec.yml"), []byte("version: 0.0\nos: linux\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	tarball = filepath.Join(dir, "bundle.tar")
	if out, err := exec.Command("tar", "-cf", tarball, "-C", bundle, ".").CombinedOutput(); err != nil {
		b.Fatalf("tar -c: %v: %s", err, out)
	}
	return bundle, tarball
}

func syncAllFS(b *testing.B) {
	b.Helper()
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		b.Fatalf("sync: %v: %s", err, out)
	}
}

// BenchmarkInstallVsTar compares Install of a 10,000-file / 200 MB bundle
// with tar -x of the same bundle, into fresh directories on the same file
// system (a temporary directory, or $DROVER_BENCH_DIR). Dirty pages are
// flushed before each timed step, so each pays only for its own writes.
// Install runs as the lifecycle runs it, with DeferSync: the Install event
// ends when the files are in place, and the flush (syncfs) happens at the
// deployment's commit point, overlapping the later hooks. ratio = tar time
// / Install time, i.e. Install throughput relative to tar's (target >= 0.8,
// both without a flush). ratio-vs-tar+sync compares the two with their
// flush (tar -x then sync, Install then Sync). Figures are medians over the
// iterations. cpu-ratio compares CPU time (user + system), which a machine
// shared with other work disturbs less.
func BenchmarkInstallVsTar(b *testing.B) {
	if _, err := exec.LookPath("tar"); err != nil {
		b.Skip("needs tar")
	}
	dir := b.TempDir()
	if d := os.Getenv("DROVER_BENCH_DIR"); d != "" {
		var err error
		if dir, err = os.MkdirTemp(d, "drover-bench-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	bundle, tarball := makeBenchBundle(b, dir)
	spec := &appspec.AppSpec{Version: "0.0", OS: "linux", FileExistsBehavior: appspec.Disallow,
		Files: []appspec.File{{Source: "/", Destination: "/opt/app"}}}
	var tarT, tarSyncT, tarCPU, instT, instSyncT, instCPU []float64
	b.SetBytes(benchBytes)
	for b.Loop() {
		b.StopTimer()
		out := filepath.Join(dir, "tar-out")
		root := filepath.Join(dir, "root")
		for _, d := range []string{out, root} {
			if err := os.RemoveAll(d); err != nil {
				b.Fatal(err)
			}
			if err := os.Mkdir(d, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		syncAllFS(b)

		cmd := exec.Command("tar", "-xf", tarball, "-C", out)
		start := time.Now()
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("tar -x: %v: %s", err, o)
		}
		tarT = append(tarT, time.Since(start).Seconds())
		tarCPU = append(tarCPU, (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds())
		syncAllFS(b)
		tarSyncT = append(tarSyncT, time.Since(start).Seconds())

		list := filepath.Join(dir, "cleanup")
		os.Remove(list)
		cpu0 := cpuTime(b)
		b.StartTimer()
		start = time.Now()
		res, err := Install(context.Background(), spec, Options{Root: root, BundleDir: bundle, CleanupFile: list, DeferSync: true})
		instT = append(instT, time.Since(start).Seconds())
		b.StopTimer()
		instCPU = append(instCPU, cpuTime(b)-cpu0)
		if err != nil {
			b.Fatal(err)
		}
		if err := Sync(res.Unsynced); err != nil {
			b.Fatal(err)
		}
		instSyncT = append(instSyncT, time.Since(start).Seconds())
		if res.Files != benchFiles+1 || res.Bytes < benchBytes {
			b.Fatalf("installed %+v", res)
		}
		b.StartTimer()
	}
	b.ReportMetric(median(tarT), "tar-s")
	b.ReportMetric(median(tarSyncT), "tar+sync-s")
	b.ReportMetric(median(instT), "install-s")
	b.ReportMetric(median(tarT)/median(instT), "ratio")
	b.ReportMetric(median(instSyncT), "install+sync-s")
	b.ReportMetric(median(tarSyncT)/median(instSyncT), "ratio-vs-tar+sync")
	b.ReportMetric(median(tarCPU)/median(instCPU), "cpu-ratio")
}

func cpuTime(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
