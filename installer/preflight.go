package installer

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/installer/provider"
	"github.com/tmbox/tmbox/manifests"
	"github.com/tmbox/tmbox/preflight"
)

// Preflight runs the checks an install runs first, and changes nothing.
type Preflight struct {
	Options
	// Config, when set, is used instead of Kubeconfig/Context.
	Config *rest.Config
	// Host is what host checks read (default: this machine).
	Host *preflight.Host
}

// Run checks the host and, unless the target is a kind cluster that does
// not exist yet, the cluster. A failed check is in the report, not in the
// error; the error is for options, catalog or manifests that cannot be
// read at all.
func (p *Preflight) Run(ctx context.Context) (preflight.Report, error) {
	opts := &p.Options
	if err := opts.Validate(); err != nil {
		return preflight.Report{}, err
	}
	cat, err := catalog.Load(opts.CatalogFile)
	if err != nil {
		return preflight.Report{}, err
	}
	if opts.Release == "" {
		opts.Release = cat.Latest().Name
	}
	rel, err := cat.Release(opts.Release)
	if err != nil {
		return preflight.Report{}, err
	}
	pf := &preflightRun{opts: opts, release: rel, host: p.Host}
	if !opts.CreateCluster {
		e, err := open(p.Config, opts)
		if err != nil {
			return preflight.Report{}, err
		}
		pf.env = e
		pf.objects, pf.objectsErr = pf.readObjects(ctx)
	}
	return pf.run(ctx), nil
}

// preflightRun gathers the checks of one run.
type preflightRun struct {
	opts    *Options
	release *catalog.Release
	host    *preflight.Host
	// env is the cluster to check; nil when there is none yet.
	env        *env
	objects    []*unstructured.Unstructured
	objectsErr error
}

// readObjects reads and renders the release's manifests.
func (p *preflightRun) readObjects(ctx context.Context) ([]*unstructured.Unstructured, error) {
	src, err := p.opts.source()
	if err != nil {
		return nil, err
	}
	d, err := objectsFor(ctx, src, p.release, p.opts.Components, p.opts)
	if err != nil {
		return nil, err
	}
	return d.unstructured(), nil
}

// unstructured lists every desired object.
func (d *desired) unstructured() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, comp := range d.release.ComponentList() {
		for _, o := range d.byComponent[comp.Name] {
			out = append(out, o.Unstructured)
		}
	}
	return out
}

// checks lists the checks for the target: host checks (all of them for a
// kind cluster on this host, the proxy and platform ones otherwise) and
// the cluster's when there is one.
func (p *preflightRun) checks() []preflight.Check {
	host := p.host
	if host == nil {
		host = preflight.LocalHost()
	}
	req := preflight.HostRequirements{
		CPUs:      p.release.Host.CPUs,
		Memory:    p.release.Host.MemoryBytes(),
		Disk:      p.release.Host.DiskBytes(),
		Kind:      p.opts.CreateCluster,
		AirGapped: p.opts.Mirror != "" || p.opts.Bundle != "",
	}
	if p.opts.Registry != "" {
		host, _, _ := strings.Cut(p.opts.Registry, "/")
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		req.NoProxyHosts = append(req.NoProxyHosts, host)
	}
	if p.opts.CreateCluster {
		kc := p.opts.KindConfig()
		for _, port := range []int{kc.HTTPPort, kc.HTTPSPort, kc.APIServerPort} {
			if port > 0 {
				req.Ports = append(req.Ports, net.JoinHostPort(kc.ListenAddress, strconv.Itoa(port)))
			}
		}
	}
	if p.env != nil {
		if u, err := url.Parse(p.env.cfg.Host); err == nil && u.Hostname() != "" {
			req.NoProxyHosts = append(req.NoProxyHosts, u.Hostname())
		}
	}
	checks := preflight.HostChecks(host, req)
	if p.env != nil {
		checks = append(checks, preflight.ClusterChecks(p.clusterTarget())...)
	}
	return checks
}

func (p *preflightRun) clusterTarget() preflight.ClusterTarget {
	return preflight.ClusterTarget{
		Client:           p.env.client,
		Release:          p.release.Name,
		KubernetesRange:  p.release.KubernetesRange(),
		AllowsKubernetes: p.release.AllowsKubernetes,
		Objects:          p.objects,
		ObjectsErr:       p.objectsErr,
		ManagedLabel:     apply.LabelManagedBy,
		ManagedValue:     apply.ManagedByValue,
		Products:         products(),
	}
}

// products identify installs of tmbox's products by their controllers'
// images (registry-independent paths).
func products() []preflight.Product {
	return []preflight.Product{
		{Name: "Istio", ImageContains: "/pilot:"},
		{Name: "Knative Serving", ImageContains: "knative.dev/serving/cmd/controller"},
		{Name: "Knative Eventing", ImageContains: "knative.dev/eventing/cmd/controller"},
		{Name: "TriggerMesh", ImageContains: "/triggermesh-controller"},
		{Name: "TriggerMesh core", ImageContains: "/core-controller"},
	}
}

// run runs the target's checks and reports each result.
func (p *preflightRun) run(ctx context.Context) preflight.Report {
	return p.runChecks(ctx, p.checks())
}

func (p *preflightRun) runChecks(ctx context.Context, checks []preflight.Check) preflight.Report {
	rep := preflight.Run(ctx, checks, preflight.Options{Timeout: p.opts.PreflightTimeout, Ignore: p.opts.IgnorePreflightErrors})
	for _, r := range rep.Results {
		r := r
		p.opts.Reporter.Report(Event{Time: time.Now(), Type: EventCheck, Phase: PhasePreflight, Message: fmt.Sprintf("%s %s: %s", r.Status, r.Name, r.Message), Check: &r})
	}
	return rep
}

// phase runs checks as the preflight phase of an operation: reported like
// any phase, a failure stops the operation before it writes anything. It
// returns the phase's journal record (none when skipped).
func (p *preflightRun) phase(ctx context.Context, checks []preflight.Check) ([]PhaseRecord, error) {
	if slices.Contains(p.opts.SkipPhases, PhasePreflight) {
		p.opts.Reporter.Report(Event{Time: time.Now(), Type: EventPhaseSkip, Phase: PhasePreflight, Message: "--skip-phases"})
		return nil, nil
	}
	start := time.Now()
	p.opts.Reporter.Report(Event{Time: start, Type: EventPhaseStart, Phase: PhasePreflight, Message: fmt.Sprintf("running %d checks", len(checks))})
	rep := p.runChecks(ctx, checks)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := rep.Err(); err != nil {
		p.opts.Reporter.Report(Event{Time: time.Now(), Type: EventPhaseFail, Phase: PhasePreflight, Error: err.Error(), Duration: time.Since(start)})
		return nil, err
	}
	warned := 0
	for _, r := range rep.Results {
		if r.Status == preflight.StatusWarn {
			warned++
		}
	}
	now := time.Now()
	p.opts.Reporter.Report(Event{Time: now, Type: EventPhaseDone, Phase: PhasePreflight, Message: fmt.Sprintf("%d checks, %d warnings", len(rep.Results), warned), Duration: now.Sub(start)})
	return []PhaseRecord{{Name: PhasePreflight, Started: start, Finished: &now, Result: ResultSucceeded}}, nil
}

// KindProvider is the kind cluster the options describe, with the
// release's node image (none needed to delete or read a cluster: rel may
// be nil).
func (o *Options) KindProvider(rel *catalog.Release) *provider.Kind {
	image := ""
	if rel != nil {
		image = rel.KindNodeImage
	}
	return &provider.Kind{
		Config:          o.KindConfig(),
		NodeImage:       image,
		StateDir:        o.stateDir(),
		MergeKubeconfig: o.MergeKubeconfig,
		Logger:          o.Logger,
	}
}

// StateDirPath is where tmbox keeps files on this host: StateDir, else
// $XDG_STATE_HOME/tmbox, else ~/.local/state/tmbox.
func (o *Options) StateDirPath() string { return o.stateDir() }

// stateDir is where tmbox keeps files on this host.
func (o *Options) stateDir() string {
	if o.StateDir != "" {
		return o.StateDir
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "tmbox")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "tmbox")
	}
	return filepath.Join(home, ".local", "state", "tmbox")
}

// KindConfig is the kind cluster config the options describe, with
// defaults filled.
func (o *Options) KindConfig() manifests.KindConfig {
	kc := o.Kind
	if kc.Name == "" {
		kc.Name = "tmbox"
	}
	if kc.ListenAddress == "" {
		kc.ListenAddress = "127.0.0.1"
	}
	if kc.HTTPPort == 0 {
		kc.HTTPPort = 80
	}
	if kc.HTTPSPort == 0 {
		kc.HTTPSPort = 443
	}
	return kc
}
