package installer

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
	// Config, when set, is the cluster (instead of Kubeconfig/Context).
	Config *rest.Config
	// Host is what host checks read (default: this machine).
	Host *preflight.Host
}

// PreflightReport is the checks' results and what they were run for.
type PreflightReport struct {
	preflight.Report
	// Release is the release the checks were run for.
	Release string
	// Target describes the cluster.
	Target string
}

// Run checks the host and, unless the target is a kind cluster that does
// not exist yet, the cluster. A failed check is in the report, not in the
// error; the error is for options, catalog or manifests that cannot be
// read at all. A bundle is not opened: the checks need only to know the
// run is air-gapped.
func (p *Preflight) Run(ctx context.Context) (*PreflightReport, error) {
	r, err := resolve(ctx, p.Options, target{config: p.Config, host: p.Host, skipBundle: true})
	if err != nil {
		return nil, err
	}
	defer r.cleanup()
	e := newEnv(r)
	cfg, err := r.provider.Find(ctx)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		if err := e.connect(cfg); err != nil {
			return nil, err
		}
		// The installed settings, when tmbox may read them: preflight
		// reports on what the run would do, but never fails for this.
		if err := e.loadState(ctx); err != nil {
			e.opts.Logger.Debug("preflight: no state", "err", err)
		}
	}
	if err := e.overlayFromState(ctx); err != nil {
		e.opts.Logger.Debug("preflight: kept Istio overlay unreadable", "err", err)
	}
	if err := e.platformFromState(ctx); err != nil {
		e.opts.Logger.Debug("preflight: installed settings unreadable", "err", err)
	}
	if cfg != nil {
		e.objectsErr = e.loadDesired(ctx)
	}
	rep := e.runChecks(ctx, PhasePreflight, e.preflightChecks())
	return &PreflightReport{Report: rep, Release: r.release.Name, Target: r.provider.Describe()}, nil
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

// preflightChecks lists the checks for the target: host checks (all of
// them for a kind cluster on this host, the proxy and platform ones
// otherwise) and the cluster's when it is connected.
func (e *env) preflightChecks() []preflight.Check {
	host := e.host
	if host == nil {
		host = preflight.LocalHost()
	}
	o := e.opts
	req := preflight.HostRequirements{
		CPUs:      e.release.Host.CPUs,
		Memory:    e.release.Host.MemoryBytes(),
		Disk:      e.release.Host.DiskBytes(),
		Kind:      e.kind != nil,
		AirGapped: o.Mirror != "" || o.Bundle != "",
	}
	if o.Registry != "" {
		host, _, _ := strings.Cut(o.Registry, "/")
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		req.NoProxyHosts = append(req.NoProxyHosts, host)
	}
	if e.kind != nil && !e.kindExists() {
		kc := e.kind.Config
		for _, port := range []int{kc.HTTPPort, kc.HTTPSPort, kc.APIServerPort} {
			if port > 0 {
				req.Ports = append(req.Ports, net.JoinHostPort(kc.ListenAddress, strconv.Itoa(port)))
			}
		}
	}
	if e.connected() {
		if u, err := url.Parse(e.cfg.Host); err == nil && u.Hostname() != "" {
			req.NoProxyHosts = append(req.NoProxyHosts, u.Hostname())
		}
	}
	checks := preflight.HostChecks(host, req)
	if e.connected() {
		checks = append(checks, preflight.ClusterChecks(e.clusterTarget())...)
	}
	return checks
}

// kindExists reports, once per run, whether the kind cluster exists
// already: a re-run reuses it, and the host ports it holds are its own,
// not ports to find free. An engine that cannot list says no (the
// container-engine check reports why).
func (e *env) kindExists() bool {
	if e.kindExisting == nil {
		ok, err := e.kind.Exists()
		if err != nil {
			e.opts.Logger.Debug("preflight: cannot list kind clusters", "err", err)
		}
		e.kindExisting = &ok
	}
	return *e.kindExisting
}

func (e *env) clusterTarget() preflight.ClusterTarget {
	t := preflight.ClusterTarget{
		Client:           e.client,
		Release:          e.release.Name,
		KubernetesRange:  e.release.KubernetesRange(),
		AllowsKubernetes: e.release.AllowsKubernetes,
		ObjectsErr:       e.objectsErr,
		ManagedLabel:     apply.LabelManagedBy,
		ManagedValue:     apply.ManagedByValue,
		Products:         products(),
	}
	if p := e.render.platform; p != nil {
		t.Domain = p.Settings.Domain
		if g := p.Settings.Gateway; g != nil {
			t.GatewayType = g.Type
		}
	}
	if e.kind != nil || e.render.kindNodePorts {
		t.GatewayType = "NodePort"
	}
	if e.desired != nil {
		t.Objects = e.desired.unstructured()
	}
	return t
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

// runChecks runs checks and reports each result as part of phase.
func (e *env) runChecks(ctx context.Context, phase string, checks []preflight.Check) preflight.Report {
	rep := preflight.Run(ctx, checks, preflight.Options{Timeout: e.opts.PreflightTimeout, Ignore: e.opts.IgnorePreflightErrors})
	for _, r := range rep.Results {
		e.report(Event{Type: EventCheck, Phase: phase, Message: fmt.Sprintf("%s %s: %s", r.Status, r.Name, r.Message), Check: &r})
	}
	return rep
}

// checksFor runs checks within a phase: a failed check (not ignored) is
// the phase's error.
func (e *env) checksFor(ctx context.Context, phase string, checks []preflight.Check) (preflight.Report, error) {
	rep := e.runChecks(ctx, phase, checks)
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	return rep, rep.Err()
}

// KindProvider is the kind cluster the options describe, with the
// release's node image (none needed to delete or read a cluster: rel may
// be nil).
func (o Options) KindProvider(rel *catalog.Release) *provider.Kind {
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
func (o Options) StateDirPath() string { return o.stateDir() }

// stateDir is where tmbox keeps files on this host.
func (o Options) stateDir() string {
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
// defaults filled. A cluster created for a private registry
// (CreateCluster with Registry) gets containerd on every node configured
// to pull from the registry's host (see registryMirror).
func (o Options) KindConfig() manifests.KindConfig {
	kc := o.kindDefaults()
	if kc.RegistryMirror == nil && o.CreateCluster && o.Registry != "" {
		kc.RegistryMirror = o.registryMirror(kc.Name)
	}
	return kc
}

// kindDefaults is Kind with the defaults filled.
func (o Options) kindDefaults() manifests.KindConfig {
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
