package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout/sim"
	"github.com/spf13/cobra"
)

type simulateFlags struct {
	hosts       int
	strategy    string
	batch       string
	canary      string
	bake        time.Duration
	minHealthy  string
	rollback    string
	hookSeconds float64
	failRate    float64
	seeds       int
	seedBase    uint64
	loss        float64
	partitions  bool
	crashes     bool
	joins       bool
	pauses      bool
	grayCuts    bool
	permanent   bool
	duplicate   float64
	slowHooks   float64
	driftExt    bool
	freshGroup  bool
	noSupFence  bool
	gates       bool
	gateFailAt  int
	gateInconAt int
	gateEvery   time.Duration
	jsonOut     bool
	parallel    int
	cpuProfile  string
}

// simulateReport is the one JSON object `drover simulate --json` prints.
type simulateReport struct {
	Hosts                 int            `json:"hosts"`
	Strategy              string         `json:"strategy"`
	Runs                  int            `json:"runs"`
	Violations            int            `json:"violations"`
	ViolationDetails      []string       `json:"violation_details,omitempty"`
	MaxConcurrent         int            `json:"max_concurrent"`
	Window                int            `json:"window"`
	Completed             int            `json:"completed"`
	Expected              int            `json:"expected"` // runs expected to complete (no permanent fault)
	Halted                int            `json:"halted"`
	RolloutSecondsP50     float64        `json:"rollout_seconds_p50"`
	RolloutSecondsP99     float64        `json:"rollout_seconds_p99"`
	GossipBytesPerHostSec float64        `json:"gossip_bytes_per_host_second"`
	Faults                map[string]int `json:"faults"`
	// GateMaxGapSeconds: the longest time between two samples of one gate
	// (runs with gates; crashes and loss only, see sim.Result), against
	// GateBoundSeconds.
	GateMaxGapSeconds float64 `json:"gate_max_gap_seconds,omitempty"`
	GateBoundSeconds  float64 `json:"gate_bound_seconds,omitempty"`
	WallSeconds       float64 `json:"wall_seconds"`
}

func newSimulateCmd(g *globalFlags) *cobra.Command {
	f := &simulateFlags{}
	cmd := &cobra.Command{
		Use:   "simulate --hosts N --strategy S",
		Short: "Run the rollout protocol over a simulated network with faults",
		Long: "simulate runs drover's real rollout protocol and strategy code for N hosts over a simulated\n" +
			"network with virtual time and seeded faults, and checks at every step that no more hosts run\n" +
			"lifecycle events than the window allows (P1) and that no host runs two deployments (P3).\n" +
			"With --gates (or --gate-fail-at / --gate-inconclusive-at STEP) a scripted health gate judges\n" +
			"every step, and it checks that no step starts before the gates of the steps before it passed,\n" +
			"that a failed gate halts every host, that an inconclusive one pauses the fleet, and that a\n" +
			"crashed evaluator costs at most the documented bound.\n" +
			"It exits non-zero if any run violated a property.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			// The simulator allocates many small, short-lived objects: trade
			// memory for fewer collections while it runs.
			defer debug.SetGCPercent(debug.SetGCPercent(200))
			if f.cpuProfile != "" {
				stop, err := startCPUProfile(f.cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			rep := runSimulations(cmd, cfg, f)
			if f.jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				if err := enc.Encode(rep); err != nil {
					return fmt.Errorf("simulate: write report: %w", err)
				}
			} else {
				printSimulateReport(cmd.OutOrStdout(), rep)
			}
			if err := cmd.Context().Err(); err != nil {
				return fmt.Errorf("simulate: %w", err)
			}
			if rep.Violations > 0 {
				return &exitError{code: 1, msg: fmt.Sprintf("simulate: %d property violations", rep.Violations)}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.hosts, "hosts", 100, "number of hosts in the group")
	fl.StringVar(&f.strategy, "strategy", "one-at-a-time", "all-at-once, one-at-a-time, rolling or canary")
	cmd.RegisterFlagCompletionFunc("strategy", completeStrategies)
	fl.StringVar(&f.batch, "batch", "", "rolling and canary batch: count or percent (e.g. 10%)")
	fl.StringVar(&f.canary, "canary", "", "canary step: count or percent")
	fl.DurationVar(&f.bake, "bake", 0, "canary bake time (virtual)")
	fl.StringVar(&f.minHealthy, "min-healthy", "", "minimum_healthy: count or percent (default: the strategy's)")
	fl.StringVar(&f.rollback, "rollback", "on-failure", "on-failure or never")
	fl.Float64Var(&f.hookSeconds, "hook-seconds", 10, "mean lifecycle duration in virtual seconds")
	fl.Float64Var(&f.failRate, "fail-rate", 0, "probability that a host's lifecycle fails")
	fl.IntVar(&f.seeds, "seeds", 10, "number of seeded runs")
	fl.Uint64Var(&f.seedBase, "seed", 1, "first seed")
	fl.Float64Var(&f.loss, "loss", 0, "packet loss probability")
	fl.BoolVar(&f.partitions, "partitions", false, "inject healing network partitions (majority/minority and symmetric)")
	fl.BoolVar(&f.crashes, "crashes", false, "inject host crashes and restarts")
	fl.BoolVar(&f.joins, "joins", false, "hosts join mid-rollout and leave gracefully")
	fl.BoolVar(&f.pauses, "pauses", false, "pause agents (SIGSTOP, frozen cgroup) for 0.05 to 5 leases while their hooks go on")
	fl.BoolVar(&f.grayCuts, "gray-cuts", false, "inject healing partial cuts: UDP only, TCP only, one way, pairwise")
	fl.BoolVar(&f.permanent, "permanent", false, "one partition (and with --gray-cuts one gray cut) never heals; completion is not expected")
	fl.Float64Var(&f.duplicate, "duplicate", 0, "probability that a datagram is delivered twice")
	fl.Float64Var(&f.slowHooks, "slow-hooks", 0, "probability that a lifecycle runs 1 to 4 leases")
	fl.BoolVar(&f.driftExt, "drift-extremes", false, "every host's clock runs at exactly 1-ρ or 1+ρ (default: a rate drawn from that range)")
	fl.BoolVar(&f.freshGroup, "fresh-group", false, "every host starts with nothing installed")
	fl.BoolVar(&f.noSupFence, "no-supervisor-fence", false, "mutation: only the agent enforces the fence (a paused agent's hook runs on)")
	_ = fl.MarkHidden("no-supervisor-fence")
	fl.BoolVar(&f.gates, "gates", false, "give the rollout a health gate (a batch gate; bake for canary) whose samples pass")
	fl.IntVar(&f.gateFailAt, "gate-fail-at", -1, "the gate's samples fail at this step (0 = the first): the rollout must halt (implies --gates)")
	fl.IntVar(&f.gateInconAt, "gate-inconclusive-at", -1, "the gate's samples are inconclusive at this step until the operator resumes the pause (implies --gates)")
	fl.DurationVar(&f.gateEvery, "gate-interval", 5*time.Second, "the gate's sampling interval (virtual); 2 samples pass it")
	fl.BoolVar(&f.jsonOut, "json", false, "print one JSON object")
	fl.IntVar(&f.parallel, "parallel", runtime.GOMAXPROCS(0), "runs simulated at once")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the runs to this file")
	_ = fl.MarkHidden("cpuprofile")
	return cmd
}

// startCPUProfile profiles the simulator (for `go tool pprof`); stop ends
// the profile and closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	out, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("simulate: cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return nil, fmt.Errorf("simulate: cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		out.Close()
	}, nil
}

func parseQuantity(flag, s string) (manifest.Quantity, error) {
	if s == "" {
		return manifest.Quantity{}, nil
	}
	q := manifest.Quantity{Set: true}
	v := s
	if strings.HasSuffix(s, "%") {
		q.Percent, v = true, strings.TrimSuffix(s, "%")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || q.Percent && n > 100 || !q.Percent && n == 0 {
		return q, fmt.Errorf("--%s %q: want a host count (1 or more) or a percentage (0%%-100%%)", flag, s)
	}
	q.Value = n
	return q, nil
}

func (f *simulateFlags) config() (sim.Config, error) {
	var c sim.Config
	if f.hosts < 1 || f.hosts > 100000 {
		return c, fmt.Errorf("--hosts %d: want 1 to 100000", f.hosts)
	}
	if f.seeds < 1 {
		return c, fmt.Errorf("--seeds %d: want at least 1", f.seeds)
	}
	if f.loss < 0 || f.loss >= 1 || f.failRate < 0 || f.failRate > 1 {
		return c, fmt.Errorf("--loss and --fail-rate are probabilities (loss below 1)")
	}
	if f.duplicate < 0 || f.duplicate > 1 || f.slowHooks < 0 || f.slowHooks > 1 {
		return c, fmt.Errorf("--duplicate and --slow-hooks are probabilities")
	}
	if f.hookSeconds <= 0 {
		return c, fmt.Errorf("--hook-seconds %v: want a positive duration", f.hookSeconds)
	}
	d := manifest.Deployment{Strategy: manifest.Strategy(f.strategy), Bake: f.bake, Rollback: manifest.Rollback(f.rollback)}
	switch d.Strategy {
	case manifest.AllAtOnce, manifest.OneAtATime, manifest.Rolling, manifest.Canary:
	default:
		return c, fmt.Errorf("--strategy %q: want all-at-once, one-at-a-time, rolling or canary", f.strategy)
	}
	if d.Rollback != manifest.RollbackOnFailure && d.Rollback != manifest.RollbackNever {
		return c, fmt.Errorf("--rollback %q: want on-failure or never", f.rollback)
	}
	var err error
	if d.Batch, err = parseQuantity("batch", f.batch); err != nil {
		return c, err
	}
	if d.Canary, err = parseQuantity("canary", f.canary); err != nil {
		return c, err
	}
	if d.MinimumHealthy, err = parseQuantity("min-healthy", f.minHealthy); err != nil {
		return c, err
	}
	if d.Strategy == manifest.Rolling && !d.Batch.Set {
		return c, fmt.Errorf("--strategy rolling needs --batch")
	}
	c = sim.Config{
		Hosts: f.hosts, Deployment: d, HookTime: time.Duration(f.hookSeconds * float64(time.Second)),
		HookFailRate: f.failRate, Loss: f.loss, Partitions: f.partitions, Crashes: f.crashes, Joins: f.joins,
		Pauses: f.pauses, GrayCuts: f.grayCuts, Permanent: f.permanent, Duplicate: f.duplicate, SlowHooks: f.slowHooks,
		DriftExtremes: f.driftExt, FreshGroup: f.freshGroup, NoSupervisorFence: f.noSupFence,
	}
	if f.gateFailAt < -1 || f.gateInconAt < -1 {
		return c, fmt.Errorf("--gate-fail-at and --gate-inconclusive-at are steps: 0 or more")
	}
	if f.gates || f.gateFailAt >= 0 || f.gateInconAt >= 0 {
		if f.gateEvery < time.Second {
			return c, fmt.Errorf("--gate-interval %s: want at least 1s", f.gateEvery)
		}
		c.Gates = &sim.GateScript{FailAt: f.gateFailAt, InconclusiveAt: f.gateInconAt, Count: 2, Interval: f.gateEvery}
	}
	return c, nil
}

func runSimulations(cmd *cobra.Command, cfg sim.Config, f *simulateFlags) simulateReport {
	start := time.Now()
	results := make([]sim.Result, f.seeds)
	ran := make([]bool, f.seeds)
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < max(1, f.parallel); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i] = sim.Run(cfg, f.seedBase+uint64(i))
				ran[i] = true
			}
		}()
	}
	ctx := cmd.Context()
feed:
	for i := 0; i < f.seeds; i++ {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()

	rep := simulateReport{Hosts: cfg.Hosts, Strategy: string(cfg.Deployment.Strategy), Faults: map[string]int{}}
	var times []float64
	var bytes float64
	for i, r := range results {
		if !ran[i] {
			continue
		}
		rep.Runs++
		rep.Violations += len(r.Violations)
		for _, v := range r.Violations {
			if len(rep.ViolationDetails) < 20 {
				rep.ViolationDetails = append(rep.ViolationDetails, fmt.Sprintf("seed %d: %s", r.Seed, v))
			}
		}
		rep.MaxConcurrent = max(rep.MaxConcurrent, r.MaxConcurrent)
		rep.Window = max(rep.Window, r.Window)
		if r.Expected {
			rep.Expected++
		}
		if r.Completed {
			rep.Completed++
			times = append(times, r.RolloutTime.Seconds())
		}
		if r.Halted {
			rep.Halted++
		}
		bytes += r.GossipBytes
		rep.GateMaxGapSeconds = max(rep.GateMaxGapSeconds, r.GateMaxGap.Seconds())
		rep.GateBoundSeconds = max(rep.GateBoundSeconds, r.GateBound.Seconds())
		for k, v := range r.Faults {
			rep.Faults[k] += v
		}
	}
	if rep.Runs > 0 {
		rep.GossipBytesPerHostSec = bytes / float64(rep.Runs)
	}
	rep.RolloutSecondsP50, rep.RolloutSecondsP99 = percentile(times, 0.50), percentile(times, 0.99)
	rep.WallSeconds = time.Since(start).Seconds()
	return rep
}

func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(float64(len(s)-1)*p + 0.5)
	return s[min(i, len(s)-1)]
}

func printSimulateReport(w io.Writer, r simulateReport) {
	fmt.Fprintf(w, "hosts %d, strategy %s, %d runs (%.1fs)\n", r.Hosts, r.Strategy, r.Runs, r.WallSeconds)
	fmt.Fprintf(w, "violations:        %d\n", r.Violations)
	for _, v := range r.ViolationDetails {
		fmt.Fprintf(w, "  %s\n", v)
	}
	fmt.Fprintf(w, "max concurrent:    %d (window %d)\n", r.MaxConcurrent, r.Window)
	fmt.Fprintf(w, "completed:         %d/%d, %d expected (halted %d)\n", r.Completed, r.Runs, r.Expected, r.Halted)
	fmt.Fprintf(w, "rollout time:      p50 %.0fs, p99 %.0fs (virtual)\n", r.RolloutSecondsP50, r.RolloutSecondsP99)
	fmt.Fprintf(w, "gossip:            %.0f bytes/s per host\n", r.GossipBytesPerHostSec)
	if r.GateBoundSeconds > 0 {
		fmt.Fprintf(w, "gates:             longest gap between two samples %.1fs (bound %.1fs)\n", r.GateMaxGapSeconds, r.GateBoundSeconds)
	}
	if len(r.Faults) > 0 {
		// One line per family (pause, gray, partition, ...), so that the
		// counts of one fault kind read together.
		keys := make([]string, 0, len(r.Faults))
		for k := range r.Faults {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fmt.Fprintln(w, "faults:")
		family := ""
		for _, k := range keys {
			fam, _, _ := strings.Cut(k, "-")
			if fam != family {
				if family != "" {
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "  %-10s", fam)
				family = fam
			}
			fmt.Fprintf(w, " %s=%d", k, r.Faults[k])
		}
		fmt.Fprintln(w)
	}
}
