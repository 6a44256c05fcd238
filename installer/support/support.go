// Package support writes tmbox's support bundle: one .tar.gz with what a
// vendor needs to understand an installation (tmbox's version, state,
// journal, logs and preflight results; the cluster's nodes, tmbox's
// objects, pods, events, container logs, CRDs, webhooks and APIServices;
// the host's OS, container engine, disk and memory) and, redacted by
// default, nothing a customer must not send.
//
// It imports no other tmbox package but internal ones: the caller hands it
// the clients, tmbox's state ConfigMap's name and a function that runs
// preflight. It never prints: it logs through an injected *slog.Logger and
// reports progress through a callback.
package support

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/tmbox/tmbox/internal/engine"
)

// Defaults of Options.
const (
	DefaultSince            = time.Hour
	DefaultMaxLogLines      = 500
	DefaultTimeout          = 2 * time.Minute
	DefaultCollectorTimeout = 45 * time.Second
	// DefaultMaxBytes caps the files' total size before compression.
	DefaultMaxBytes = 256 << 20
	// DefaultMaxLogBytes caps each log file (a container's, or one of
	// tmbox's own): the last bytes are kept.
	DefaultMaxLogBytes = 2 << 20
	// DefaultMaxLogFiles is how many of tmbox's newest log files are kept.
	DefaultMaxLogFiles = 3
)

// IndexFile and ReportFile are at the archive's root.
const (
	IndexFile  = "index.json"
	ReportFile = "redaction-report.json"
	// Format identifies the index's layout.
	Format = "tmbox.dev/support-bundle/v1"
)

// Options say what to collect and how.
type Options struct {
	// Redact replaces values that look like credentials in every file
	// with Mask (Rules()). The zero value is false: callers say so.
	Redact bool
	// Since bounds events and current container logs (default 1h).
	Since time.Duration
	// MaxLogLines is how many of each container log's last lines are kept
	// (default 500).
	MaxLogLines int64
	// Timeout bounds the whole collection (default 2m): what is collected
	// by then is written, the rest is marked as timed out.
	Timeout time.Duration
	// CollectorTimeout bounds each collector (default 45s).
	CollectorTimeout time.Duration
	// MaxBytes caps the files' total size (default 256 MiB); files beyond
	// it are left out and named in the index.
	MaxBytes int64
	// MaxLogBytes caps each log file (default 2 MiB, the last bytes kept).
	MaxLogBytes int64

	// Version is what the tmbox binary is (written as tmbox/version.json).
	Version any
	// StateDir is tmbox's directory on this host: its logs/ are collected
	// and its file system's free space reported.
	StateDir string
	// MaxLogFiles is how many of tmbox's newest log files are kept
	// (default 3).
	MaxLogFiles int
	// Preflight, when set, runs tmbox's preflight checks now for release
	// (the installed one from the state, "" when unknown) and returns the
	// report to write as tmbox/preflight.json.
	Preflight func(ctx context.Context, release string) (any, error)

	// Cluster is the cluster to collect from.
	Cluster Cluster
	// Host is this machine.
	Host Host

	// Logger receives debug logs (default: discard).
	Logger *slog.Logger
	// Progress, when set, is told when each collector starts and ends.
	Progress func(Progress)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Cluster is how to reach the cluster.
type Cluster struct {
	// Client and Dynamic are the cluster's clients; nil (with Err saying
	// why) when none could be made.
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Err is why there are no clients (no kubeconfig, a bad one).
	Err error
	// Describe names the cluster in the index ("https://127.0.0.1:6443").
	Describe string
	// State locates tmbox's state ConfigMap.
	State StateRef
	// LockName, when set, is the Lease in State's namespace that a
	// writing tmbox holds (written as tmbox/lock.yaml).
	LockName string
	// Logs reads container logs (default: the API server's pods/log).
	Logs LogSource
}

// StateRef locates tmbox's state: a ConfigMap whose Key holds the state
// as JSON. The fields read from it (release, platform, journal,
// inventory) are installer.State's JSON names.
type StateRef struct {
	Namespace, Name, Key string
}

// LogSource reads a container's log.
type LogSource interface {
	Logs(ctx context.Context, namespace, pod string, opts *corev1.PodLogOptions) ([]byte, error)
}

// LogSourceFunc adapts a function to LogSource.
type LogSourceFunc func(ctx context.Context, namespace, pod string, opts *corev1.PodLogOptions) ([]byte, error)

// Logs implements LogSource.
func (f LogSourceFunc) Logs(ctx context.Context, namespace, pod string, opts *corev1.PodLogOptions) ([]byte, error) {
	return f(ctx, namespace, pod, opts)
}

// Host is this machine, as the host collectors read it.
type Host struct {
	// Root is where the host's files are read from (/etc/os-release,
	// /proc/meminfo, /var/lib/docker); default "/".
	Root string
	// Engine finds the container engine (default: internal/engine's
	// detection, kind's rules, on this process's environment and PATH).
	Engine func() (engine.Binary, error)
	// Run runs a command and returns its combined output (default:
	// os/exec).
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Progress is one collector starting (Done false) or ending.
type Progress struct {
	// Collector is its name ("cluster/nodes"); What says what it
	// collects ("nodes").
	Collector, What string
	Done            bool
	// Status and Error are the outcome, when Done.
	Status Status
	Error  string
}

// Status is a collector's outcome.
type Status string

// Collector outcomes.
const (
	// StatusOK: everything was collected.
	StatusOK Status = "ok"
	// StatusPartial: something was collected; Warnings say what not.
	StatusPartial Status = "partial"
	// StatusFailed: the collector ran and collected nothing.
	StatusFailed Status = "failed"
	// StatusSkipped: the collector could not run (no cluster, no
	// container engine, out of time).
	StatusSkipped Status = "skipped"
)

// Index is index.json: what the bundle holds.
type Index struct {
	Format  string    `json:"format"`
	Created time.Time `json:"created"`
	// Tmbox is the version of the tmbox that wrote it.
	Tmbox    any  `json:"tmbox,omitempty"`
	Redacted bool `json:"redacted"`
	// Since and MaxLogLines are the bounds the logs and events were
	// collected with.
	Since       string       `json:"since"`
	MaxLogLines int64        `json:"maxLogLines"`
	Cluster     ClusterIndex `json:"cluster"`
	Collectors  []Collected  `json:"collectors"`
	// Files lists every file but index.json, in archive order.
	Files []File `json:"files"`
}

// ClusterIndex says whether the cluster could be reached.
type ClusterIndex struct {
	Describe  string `json:"describe,omitempty"`
	Reachable bool   `json:"reachable"`
	// Error is why not.
	Error string `json:"error,omitempty"`
}

// Collected is one collector's outcome.
type Collected struct {
	Name     string   `json:"name"`
	What     string   `json:"what"`
	Status   Status   `json:"status"`
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Notes say what was not there to collect (no log files, no state)
	// without it being a problem.
	Notes   []string `json:"notes,omitempty"`
	Files   int      `json:"files"`
	Seconds float64  `json:"seconds"`
}

// File is one file of the archive.
type File struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	Collector string `json:"collector"`
}

// Redaction is one line of redaction-report.json: how many values a rule
// replaced in a file (never the values).
type Redaction struct {
	File  string `json:"file"`
	Rule  string `json:"rule"`
	Count int    `json:"count"`
}

// Report is redaction-report.json.
type Report struct {
	Redacted   bool        `json:"redacted"`
	Rules      []string    `json:"rules,omitempty"`
	Redactions []Redaction `json:"redactions"`
}

// Result is what Write and Create wrote.
type Result struct {
	// Path is the bundle file (Create only).
	Path   string
	Index  Index
	Report Report
	// Bytes is the compressed size.
	Bytes int64
}

// Failed lists the collectors that collected nothing.
func (ix *Index) Failed() []Collected {
	var out []Collected
	for _, c := range ix.Collectors {
		if c.Status == StatusFailed || c.Status == StatusSkipped {
			out = append(out, c)
		}
	}
	return out
}

// Create writes the bundle to path: to a temporary file beside it, renamed
// at the end, so a failed or interrupted run leaves no partial file. An
// overall timeout is not a failure (what was collected is written);
// ctx's cancellation is.
func Create(ctx context.Context, path string, o Options) (*Result, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("support bundle: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	res, err := Write(ctx, tmp, o)
	if err != nil {
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("support bundle: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("support bundle: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("support bundle: %w", err)
	}
	done = true
	res.Path = path
	return res, nil
}

// Write collects and writes the bundle as a gzip-compressed tar stream to
// w. It fails only when w fails or ctx is cancelled; a collector that
// fails is recorded in the index.
func Write(ctx context.Context, w io.Writer, o Options) (*Result, error) {
	o = o.withDefaults()
	cw := &countingWriter{w: w}
	ar := newArchive(cw, o.Now(), o.MaxBytes)
	r := newRun(o, ar)
	r.collect(ctx)
	if ctx.Err() != nil {
		ar.close()
		return nil, fmt.Errorf("support bundle: %w", context.Cause(ctx))
	}
	res, err := r.finish()
	if err != nil {
		ar.close()
		return nil, fmt.Errorf("support bundle: %w", err)
	}
	res.Bytes = cw.n
	return res, nil
}

// withDefaults fills the zero fields.
func (o Options) withDefaults() Options {
	if o.Since <= 0 {
		o.Since = DefaultSince
	}
	if o.MaxLogLines <= 0 {
		o.MaxLogLines = DefaultMaxLogLines
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.CollectorTimeout <= 0 {
		o.CollectorTimeout = DefaultCollectorTimeout
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxLogBytes <= 0 {
		o.MaxLogBytes = DefaultMaxLogBytes
	}
	if o.MaxLogFiles <= 0 {
		o.MaxLogFiles = DefaultMaxLogFiles
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = func(Progress) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Cluster.Logs == nil && o.Cluster.Client != nil {
		o.Cluster.Logs = apiLogs{o.Cluster.Client}
	}
	if o.Cluster.Err == nil && (o.Cluster.Client == nil || o.Cluster.Dynamic == nil) {
		o.Cluster.Err = errors.New("no cluster client")
	}
	o.Host = o.Host.withDefaults()
	return o
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
