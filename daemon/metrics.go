package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the agent's event-driven Prometheus metrics (DESIGN.md §10),
// registered on a registry the agent owns; nothing goes to the default
// registry. The metrics that describe state (revisions, the fleet, sources,
// members) are computed at scrape time by statusCollector, so they are never
// stale.
type Metrics struct {
	BuildInfo             *prometheus.GaugeVec
	Deployments           *prometheus.CounterVec
	DeploymentDuration    *prometheus.HistogramVec
	HookDuration          *prometheus.HistogramVec
	HookFailures          *prometheus.CounterVec
	ConfigReloads         *prometheus.CounterVec
	ConfigLastReloadOK    prometheus.Gauge
	GossipMessagesDropped *prometheus.CounterVec
	GossipBytes           *prometheus.CounterVec
	// GateEvaluations and GateLastValue: the health-gate samples this host
	// took (it evaluates a gate when the rollout makes it its evaluator).
	GateEvaluations *prometheus.CounterVec
	GateLastValue   *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them, with the Go runtime
// and process collectors, on reg.
func NewMetrics(reg prometheus.Registerer, version, commit, goVersion string) (*Metrics, error) {
	hookBuckets := []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	m := &Metrics{
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drover_build_info", Help: "Always 1; labels say which drover runs.",
		}, []string{"version", "commit", "goversion"}),
		Deployments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_deployments_total", Help: "Deployments this host finished, by result (succeeded, failed).",
		}, []string{"app", "result"}),
		DeploymentDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "drover_deployment_duration_seconds", Help: "Time of a whole lifecycle on this host.", Buckets: hookBuckets,
		}, []string{"app"}),
		HookDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "drover_hook_duration_seconds", Help: "Time of one lifecycle event's scripts on this host.", Buckets: hookBuckets,
		}, []string{"app", "event"}),
		HookFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_hook_failures_total", Help: "Lifecycle events that failed on this host.",
		}, []string{"app", "event"}),
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_config_reloads_total", Help: "Configuration reloads, by result (applied; rejected: the previous configuration stays; partial: applied, but an application failed to start).",
		}, []string{"result"}),
		ConfigLastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drover_config_last_reload_successful", Help: "1 when the last configuration reload was applied whole, 0 when it was rejected or an application failed to start.",
		}),
		GossipMessagesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_gossip_messages_dropped_total", Help: "Gossip messages dropped, by reason (malformed, oversized, version).",
		}, []string{"reason"}),
		GossipBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_gossip_bytes_total", Help: "Gossip payload bytes, by direction (sent, received).",
		}, []string{"direction"}),
		GateEvaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_gate_evaluations_total", Help: "Health-gate samples this host took, by result (pass, fail, inconclusive).",
		}, []string{"app", "gate", "result"}),
		GateLastValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drover_gate_last_value", Help: "The value of the last health-gate sample this host took (the largest of a vector; NaN: no data).",
		}, []string{"app", "gate"}),
	}
	cs := []prometheus.Collector{
		m.BuildInfo, m.Deployments, m.DeploymentDuration, m.HookDuration, m.HookFailures,
		m.ConfigReloads, m.ConfigLastReloadOK, m.GossipMessagesDropped, m.GossipBytes,
		m.GateEvaluations, m.GateLastValue,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.BuildInfo.WithLabelValues(version, commit, goVersion).Set(1)
	m.ConfigLastReloadOK.Set(1)
	return m, nil
}
