package support

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// maxWarnings caps each collector's warnings in the index.
const maxWarnings = 25

// collector is one part of the bundle.
type collector struct {
	// name is the collector's name in the index ("cluster/nodes"); what
	// is the progress line's ("nodes").
	name, what string
	// cluster marks a collector that needs the cluster reachable; probe
	// marks the one that finds out.
	cluster, probe bool
	run            func(ctx context.Context, s *sink) error
}

// collectors lists every collector in the order they run: this host's
// first (they work without a cluster), then the cluster's, preflight last
// (the slowest).
func (r *run) collectors() []collector {
	return []collector{
		{name: "tmbox/version", what: "tmbox's version", run: r.tmboxVersion},
		{name: "tmbox/logs", what: "tmbox's log files", run: r.tmboxLogs},
		{name: "host/os", what: "the host's OS", run: r.hostOS},
		{name: "host/memory", what: "the host's memory", run: r.hostMemory},
		{name: "host/disk", what: "the host's disk space", run: r.hostDisk},
		{name: "host/engine", what: "the container engine and kind's node containers", run: r.hostEngine},
		{name: "cluster/version", what: "the cluster's version", cluster: true, probe: true, run: r.clusterVersion},
		{name: "tmbox/state", what: "tmbox's state, settings and journal", cluster: true, run: r.tmboxState},
		{name: "cluster/nodes", what: "nodes", cluster: true, run: r.clusterNodes},
		{name: "cluster/managed", what: "the objects tmbox manages", cluster: true, run: r.clusterManaged},
		{name: "cluster/crds", what: "CRDs", cluster: true, run: r.clusterCRDs},
		{name: "cluster/webhooks", what: "webhook configurations", cluster: true, run: r.clusterWebhooks},
		{name: "cluster/apiservices", what: "APIServices", cluster: true, run: r.clusterAPIServices},
		{name: "cluster/pods", what: "the release namespaces' pods", cluster: true, run: r.clusterPods},
		{name: "cluster/events", what: "events", cluster: true, run: r.clusterEvents},
		{name: "cluster/logs", what: "container logs", cluster: true, run: r.clusterLogs},
		{name: "tmbox/preflight", what: "preflight checks", run: r.tmboxPreflight},
	}
}

// run is one collection: the archive, the redactor and what collectors
// share (the state's release, the namespaces, the pods).
type run struct {
	o   Options
	ar  *archive
	red *Redactor

	mu         sync.Mutex
	redactions []Redaction
	collected  []Collected

	// Set by the probe and cluster collectors, read by later ones (they
	// run one after another).
	reachable  bool
	clusterErr error
	release    string
	namespaces map[string]string // namespace → why it is included
	pods       []corev1.Pod
}

func newRun(o Options, ar *archive) *run {
	r := &run{o: o, ar: ar, namespaces: map[string]string{}}
	if o.Redact {
		r.red = NewRedactor()
	}
	if o.Cluster.State.Namespace != "" {
		r.namespaces[o.Cluster.State.Namespace] = "tmbox's state"
	}
	return r
}

// skipError marks a collector that could not run at all.
type skipError struct{ err error }

func (e *skipError) Error() string { return e.err.Error() }
func (e *skipError) Unwrap() error { return e.err }

// skip returns an error that marks the collector skipped.
func skip(format string, args ...any) error { return &skipError{fmt.Errorf(format, args...)} }

// collect runs every collector within the overall timeout.
func (r *run) collect(parent context.Context) {
	ctx, cancel := context.WithTimeout(parent, r.o.Timeout)
	defer cancel()
	for _, c := range r.collectors() {
		res := Collected{Name: c.name, What: c.what}
		switch {
		case parent.Err() != nil:
			return
		case ctx.Err() != nil:
			res.Status, res.Error = StatusSkipped, fmt.Sprintf("out of time: the bundle's timeout (%s) passed", r.o.Timeout)
			r.record(res)
			continue
		case c.cluster && !c.probe && !r.reachable:
			res.Status, res.Error = StatusSkipped, "the cluster could not be reached: "+errString(r.clusterErr)
			r.o.Progress(Progress{Collector: c.name, What: c.what, Done: true, Status: res.Status, Error: res.Error})
			r.record(res)
			continue
		}
		r.o.Progress(Progress{Collector: c.name, What: c.what})
		start := time.Now()
		s := &sink{r: r, c: &res}
		cctx, ccancel := context.WithTimeout(ctx, r.o.CollectorTimeout)
		err := c.run(cctx, s)
		timedOut := cctx.Err() != nil && parent.Err() == nil
		ccancel()
		res.Seconds = time.Since(start).Round(time.Millisecond).Seconds()
		s.finish()
		var se *skipError
		switch {
		case errors.As(err, &se):
			res.Status, res.Error = StatusSkipped, err.Error()
		case err != nil:
			res.Status, res.Error = StatusFailed, err.Error()
			if timedOut {
				res.Error = fmt.Sprintf("timed out after %s: %v", r.o.CollectorTimeout, err)
			}
		case len(res.Warnings) > 0:
			res.Status = StatusPartial
		default:
			res.Status = StatusOK
		}
		if c.probe {
			r.reachable = err == nil
			if err != nil {
				r.clusterErr = err
			}
		}
		r.o.Logger.Debug("support: collected", "collector", c.name, "status", res.Status, "error", res.Error, "files", res.Files, "seconds", res.Seconds)
		r.o.Progress(Progress{Collector: c.name, What: c.what, Done: true, Status: res.Status, Error: res.Error})
		r.record(res)
	}
}

func (r *run) record(c Collected) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collected = append(r.collected, c)
}

// finish writes the redaction report and the index, and closes the
// archive.
func (r *run) finish() (*Result, error) {
	rep := Report{Redacted: r.red != nil, Redactions: r.redactions}
	if r.red != nil {
		rep.Rules = r.red.RuleNames()
	}
	if rep.Redactions == nil {
		rep.Redactions = []Redaction{}
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := r.ar.add(ReportFile, "support", append(data, '\n'), true); err != nil {
		return nil, err
	}
	ix := Index{
		Format: Format, Created: r.o.Now().UTC(), Tmbox: r.o.Version, Redacted: r.red != nil,
		Since: r.o.Since.String(), MaxLogLines: r.o.MaxLogLines,
		Cluster:    ClusterIndex{Describe: r.o.Cluster.Describe, Reachable: r.reachable},
		Collectors: r.collected,
		Files:      r.ar.listed(),
	}
	if !r.reachable {
		ix.Cluster.Error = errString(r.clusterErr)
		if r.clusterErr == nil {
			ix.Cluster.Error = errString(r.o.Cluster.Err)
		}
	}
	data, err = json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return nil, err
	}
	if r.red != nil {
		// Error messages may quote a URL or a header: the index is
		// redacted too (its redactions are not in the report, which
		// is written first).
		data, _ = r.red.Redact(data)
	}
	if err := r.ar.add(IndexFile, "support", append(data, '\n'), true); err != nil {
		return nil, err
	}
	if err := r.ar.close(); err != nil {
		return nil, err
	}
	return &Result{Index: ix, Report: rep}, nil
}

func errString(err error) string {
	if err == nil {
		return "unknown"
	}
	return err.Error()
}

// sink is one collector's view of the archive: the files it writes are
// redacted and attributed to it.
type sink struct {
	r *run
	c *Collected

	mu       sync.Mutex
	warnings []string
	dropped  int
}

// write redacts data and adds it to the archive as name. A file over the
// bundle's size cap is left out with a warning.
func (s *sink) write(name string, data []byte) error {
	if s.r.red != nil {
		var counts map[string]int
		data, counts = s.r.red.Redact(data)
		s.r.addRedactions(name, counts)
	}
	err := s.r.ar.add(name, s.c.Name, data, false)
	var ce *capError
	if errors.As(err, &ce) {
		s.warn("%v", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	s.mu.Lock()
	s.c.Files++
	s.mu.Unlock()
	return nil
}

// json writes v as indented JSON.
func (s *sink) json(name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return s.write(name, append(data, '\n'))
}

// yaml writes v as YAML.
func (s *sink) yaml(name string, v any) error {
	data, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return s.write(name, data)
}

// list writes items as a YAML v1 List.
func (s *sink) list(name string, items []any) error {
	if items == nil {
		items = []any{}
	}
	return s.yaml(name, map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
}

// warn records something the collector could not collect.
func (s *sink) warn(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.warnings) >= maxWarnings {
		s.dropped++
		return
	}
	s.warnings = append(s.warnings, fmt.Sprintf(format, args...))
}

// note says something about what was (not) collected that is not a
// problem.
func (s *sink) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.Notes = append(s.c.Notes, fmt.Sprintf(format, args...))
}

// finish moves the warnings into the collector's result.
func (s *sink) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.Warnings = s.warnings
	if s.dropped > 0 {
		s.c.Warnings = append(s.c.Warnings, fmt.Sprintf("… and %d more", s.dropped))
	}
}

// addRedactions records a file's redaction counts.
func (r *run) addRedactions(file string, counts map[string]int) {
	if len(counts) == 0 {
		return
	}
	rules := make([]string, 0, len(counts))
	for rule := range counts {
		rules = append(rules, rule)
	}
	sort.Strings(rules)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rule := range rules {
		r.redactions = append(r.redactions, Redaction{File: file, Rule: rule, Count: counts[rule]})
	}
}
