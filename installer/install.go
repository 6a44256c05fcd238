package installer

import (
	"context"
	"fmt"
	"runtime/trace"
	"slices"
	"strings"

	"k8s.io/client-go/rest"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/provider"
	"github.com/tmbox/tmbox/preflight"
)

// Install converges a cluster to a release. Re-running it is safe: what is
// already in place is verified and left alone, an interrupted phase is
// redone.
type Install struct {
	Options
	// Config, when set, is the cluster (instead of Kubeconfig/Context).
	Config *rest.Config
	// Host is what host preflight checks read (default: this machine).
	Host *preflight.Host
	// Provider, when set, is the target instead of the one the options
	// select (kind with the release's node image when creating a cluster, else
	// the kubeconfig's cluster).
	Provider provider.Provider

	// settingsOnly makes the run a configure: the installed release's
	// objects converge to the new settings; no Jobs are created or pruned.
	settingsOnly bool
}

// Run performs the install (with DryRun: reports the plan and changes
// nothing). Nothing is written before the preflight checks pass and every
// manifest is fetched and verified.
func (in *Install) Run(ctx context.Context) (*Result, error) {
	if in.DryRun {
		_, err := in.Plan(ctx)
		return nil, err
	}
	kind := "install"
	if in.settingsOnly {
		kind = "configure"
	}
	region := trace.StartRegion(ctx, "start")
	e, err := in.start(ctx, kind+" "+in.Release)
	region.End()
	if err != nil {
		return nil, err
	}
	defer e.cleanup()
	defer func() {
		defer trace.StartRegion(ctx, "release the lock").End()
		e.releaseLock()
	}()
	rel := e.release
	begin := func(ctx context.Context) error {
		return e.beginOperation(ctx, kind, kind+"-"+rel.Name, "", rel.Name)
	}
	rn := &runner{e: e, begin: begin}
	err = rn.run(ctx, installPhases())
	if !rn.begun {
		if err != nil {
			return nil, err
		}
		if err := begin(ctx); err != nil { // every writing phase was skipped
			return nil, err
		}
	}
	if err == nil {
		e.state.Release = rel.Name
		e.state.OptionsDigest = e.opts.Digest(e.overlayDigest())
		e.state.Platform = e.platformState()
		e.state.IstioOverlay = e.overlayState()
		if e.kind != nil && e.state.KindCluster == "" {
			// The run that laid the cluster down records its host
			// address; later runs (a re-run, a bundle's images loaded
			// into the nodes) keep it: their kind config is not the one
			// the cluster was made with.
			e.state.KindCluster = e.kind.Config.Name
			e.state.HostAddress = kindHostAddress(e.kind.Config.ListenAddress, e.kind.Config.HTTPPort)
		}
		e.state.URLPattern = e.urlPattern()
		e.state.Registry = e.opts.Registry
		e.state.ImageOverrides = e.overridesState()
	}
	region = trace.StartRegion(ctx, "end the operation")
	err = e.endOperation(ctx, err)
	region.End()
	if err != nil {
		return nil, err
	}
	defer trace.StartRegion(ctx, "result").End()
	return e.result(ctx), nil
}

// Plan says what Run would do, phase by phase, as data, and writes
// nothing. It runs the preflight checks (they only read) and reports each
// phase's plan as an EventPlan.
func (in *Install) Plan(ctx context.Context) (*InstallPlan, error) {
	e, err := in.start(ctx, "")
	if err != nil {
		return nil, err
	}
	defer e.cleanup()
	phases, err := (&runner{e: e}).plan(ctx, installPhases())
	if err != nil {
		return nil, err
	}
	return &InstallPlan{Release: e.release.Name, Target: e.provider.Describe(), Phases: phases}, nil
}

// start resolves the options, finds the cluster when it exists already
// and renders the release's objects: everything a run needs before its
// first phase.
//
// lockCommand, when set, makes the run take the cluster's lock as soon as
// it is connected (Plan reads only and takes none).
func (in *Install) start(ctx context.Context, lockCommand string) (*env, error) {
	r, err := resolve(ctx, in.Options, target{config: in.Config, provider: in.Provider, host: in.Host})
	if err != nil {
		return nil, err
	}
	e := newEnv(r)
	e.settingsOnly = in.settingsOnly
	e.lockCommand = lockCommand
	if err := e.open(ctx); err != nil {
		e.releaseLock()
		r.cleanup()
		return nil, err
	}
	return e, nil
}

// open checks the overlay against the release, connects to the cluster
// when the provider finds one without laying anything down, and renders
// the release's objects.
func (e *env) open(ctx context.Context) error {
	if err := checkOverlay(e.render.istioOverlay, e.release); err != nil {
		return err
	}
	cfg, err := e.provider.Find(ctx)
	if err != nil {
		return err
	}
	if cfg != nil {
		if err := e.connect(cfg); err != nil {
			return err
		}
		region := trace.StartRegion(ctx, "lock and state")
		err := e.takeLock(ctx)
		if err == nil {
			err = e.loadState(ctx)
		}
		region.End()
		if err != nil {
			return err
		}
	}
	if err := e.renderFromState(ctx); err != nil {
		return err
	}
	defer trace.StartRegion(ctx, "fetch, verify and render").End()
	return e.loadDesired(ctx)
}

// result is what the install converged to.
func (e *env) result(ctx context.Context) *Result {
	res := &Result{Release: e.release.Name, Target: e.provider.Describe()}
	for _, c := range e.release.ComponentList() {
		if slices.Contains(e.opts.Components, c.Name) {
			res.Components = append(res.Components, ComponentVersion{Name: c.Name, Version: c.Version})
		}
	}
	if e.kind != nil {
		res.Kubeconfig = e.kind.KubeconfigPath()
	}
	if e.state != nil {
		res.URLPattern = e.state.URLPattern
		if e.connected() {
			in := ingressOf(ctx, e.client, e.state.HostAddress)
			res.Ingress = &in
		}
	}
	return res
}

// InstallPhases lists an install's phases in run order.
func InstallPhases() []PhaseInfo { return infos(installPhases()) }

// UpgradePhases lists the phases each hop of an upgrade runs.
func UpgradePhases() []PhaseInfo { return infos(hopPhases()) }

func infos(phases []phase) []PhaseInfo {
	out := make([]PhaseInfo, 0, len(phases))
	for _, p := range phases {
		out = append(out, p.info())
	}
	return out
}

// installPhases is the phase list of an install; an upgrade hop runs the
// same pieces (hopPhases).
func installPhases() []phase {
	return []phase{
		preflightPhase(),
		clusterPhase(checkInstallState),
		imagesPhase(),
		componentPhase(PhaseIstio, "installing Istio", catalog.Istio),
		componentPhase(PhaseKnativeServing, "installing Knative Serving and net-istio", catalog.KnativeServing, catalog.NetIstio),
		componentPhase(PhaseKnativeEventing, "installing Knative Eventing", catalog.KnativeEventing),
		componentPhase(PhaseTriggerMesh, "installing TriggerMesh", catalog.TriggerMesh, catalog.TriggerMeshCore),
		addonsPhase(),
		verifyPhase(),
	}
}

// checkInstallState loads the cluster's state and refuses an install that
// would fight it: another release installed, or another operation
// unfinished.
func checkInstallState(ctx context.Context, e *env) error {
	if err := e.loadState(ctx); err != nil {
		return err
	}
	rel := e.release
	if e.state.Release != "" && e.state.Release != rel.Name {
		return fmt.Errorf("release %s is installed, not %s: %s", e.state.Release, rel.Name, moveAdvice(e.catalog, e.state.Release, rel.Name))
	}
	if cur := e.state.Current(); cur != nil && cur.Kind != "install" && cur.Kind != "configure" {
		return fmt.Errorf("an unfinished %s (%s) is recorded in the cluster; finish it first: %s", cur.Kind, cur.ID, finishAdvice(cur))
	}
	return nil
}

// loadState reads the cluster's state once.
func (e *env) loadState(ctx context.Context) error {
	if e.state != nil {
		return nil
	}
	st, err := e.store.Load(ctx)
	if err != nil {
		return err
	}
	e.state = st
	return nil
}

// preflightPhase runs the host checks and, when the cluster is there
// already, its checks; a failure stops the run before anything is
// written.
func preflightPhase() phase {
	return phase{
		name: PhasePreflight, title: "preflight checks",
		start: func(e *env) string { return fmt.Sprintf("running %d checks", len(e.preflightChecks())) },
		plan: func(ctx context.Context, e *env) (PhasePlan, error) {
			rep, err := e.checksFor(ctx, PhasePreflight, e.preflightChecks())
			pp := reportPlan(rep)
			pp.Summary = fmt.Sprintf("%d checks: %d warnings, %d failures", pp.Checks, pp.Warnings, pp.Failures)
			return pp, err
		},
		run: func(ctx context.Context, e *env) (string, error) {
			rep, err := e.checksFor(ctx, PhasePreflight, e.preflightChecks())
			if err != nil {
				return "", err
			}
			pp := reportPlan(rep)
			return fmt.Sprintf("%d checks, %d warnings", pp.Checks, pp.Warnings), nil
		},
	}
}

// maxListedObjects is how many objects a component's plan summary names
// (the plan's data names them all).
const maxListedObjects = 10

// reportPlan counts a preflight report.
func reportPlan(rep preflight.Report) PhasePlan {
	pp := PhasePlan{Checks: len(rep.Results)}
	for _, r := range rep.Results {
		switch {
		case r.Status == preflight.StatusWarn:
			pp.Warnings++
		case r.Status == preflight.StatusFail && !r.Ignored:
			pp.Failures++
		}
	}
	return pp
}

// clusterPhase lays down the cluster when the provider has to (kind), runs
// the cluster's checks once there is one, and then after (the install's or
// upgrade's look at the state).
func clusterPhase(after func(context.Context, *env) error) phase {
	return phase{
		name: PhaseCluster, title: "the cluster",
		start: func(e *env) string {
			if e.connected() {
				return "using the existing cluster"
			}
			return "laying down " + e.provider.Describe()
		},
		plan: func(ctx context.Context, e *env) (PhasePlan, error) {
			if !e.connected() {
				e.state = &State{}
				return PhasePlan{Summary: "create or reuse " + e.provider.Describe()}, nil
			}
			if after != nil {
				if err := after(ctx, e); err != nil {
					return PhasePlan{}, err
				}
			}
			return PhasePlan{Summary: "use " + e.clusterSummary()}, nil
		},
		run: func(ctx context.Context, e *env) (string, error) {
			if !e.connected() {
				cfg, err := e.provider.Ensure(ctx)
				if err != nil {
					return "", err
				}
				if err := e.connect(cfg); err != nil {
					return "", err
				}
				if err := e.takeLock(ctx); err != nil {
					return "", err
				}
				// The cluster's own checks, now that there is one.
				if _, err := e.checksFor(ctx, PhaseCluster, preflight.ClusterChecks(e.clusterTarget())); err != nil {
					return "", err
				}
			}
			if after != nil {
				if err := after(ctx, e); err != nil {
					return "", err
				}
			}
			return e.clusterSummary(), nil
		},
	}
}

// imagesPhase pushes a bundle's images to the private registry, or loads
// them into the kind nodes; otherwise the cluster pulls the pinned images.
func imagesPhase() phase {
	return phase{
		name: PhaseImages, title: "images", writes: true,
		plan: func(_ context.Context, e *env) (PhasePlan, error) {
			switch {
			case e.bundle != nil && e.opts.Registry != "":
				return PhasePlan{Images: len(e.bundle.Manifest.Images), Summary: fmt.Sprintf("push the bundle's %d images to %s", len(e.bundle.Manifest.Images), e.opts.Registry)}, nil
			case e.bundle != nil && e.kind != nil:
				return PhasePlan{Images: len(e.bundle.Manifest.Images), Summary: fmt.Sprintf("load the bundle's %d images into the kind nodes", len(e.bundle.Manifest.Images))}, nil
			}
			return PhasePlan{Summary: "nothing to load: the cluster pulls the pinned images from their registries"}, nil
		},
		run: func(ctx context.Context, e *env) (string, error) {
			switch {
			case e.bundle != nil && e.opts.Registry != "":
				return e.pushImages(ctx)
			case e.bundle != nil && e.kind != nil:
				return e.loadKindImages(ctx)
			}
			return "nothing to load: the cluster pulls the pinned images from their registries", nil
		},
	}
}

// componentPhase converges a group of components. The runner converges
// the selected ones through a pipeline (installer/pipeline.go), which
// may start them before the phase and with the phases around it; run
// itself only answers for a phase with none selected.
func componentPhase(name, title string, components ...string) phase {
	p := phase{name: name, title: title, writes: true, components: components}
	p.plan = func(ctx context.Context, e *env) (PhasePlan, error) {
		comps := p.selected(e)
		if len(comps) == 0 {
			return PhasePlan{Skip: "not selected (--components)", Summary: "skip: not selected (--components)"}, nil
		}
		diffs, err := e.diffComponents(ctx, comps, e.connected(), nil, e.desired, true)
		if err != nil {
			return PhasePlan{}, err
		}
		var parts []string
		for _, d := range diffs {
			comp, _ := e.release.Component(d.Component)
			part := fmt.Sprintf("%s %s: %d to apply (%d new, %d changed), %d unchanged, %d to prune", d.Component, comp.Version, d.Add+d.Change, d.Add, d.Change, d.Unchanged, d.Prune)
			if n := len(d.Details); n > 0 && n <= maxListedObjects {
				part += " (" + strings.Join(d.Details, ", ") + ")"
			}
			parts = append(parts, part)
		}
		return PhasePlan{Summary: strings.Join(parts, "; "), Components: diffs}, nil
	}
	p.run = func(context.Context, *env) (string, error) { return "not selected", nil }
	return p
}

// selected lists the components of a component phase this run converges,
// in install order (reversed while rolling back, which undoes).
func (p phase) selected(e *env) []string {
	var out []string
	for _, c := range p.components {
		if slices.Contains(e.opts.Components, c) && (e.restore == nil || slices.Contains(e.restore, c)) {
			out = append(out, c)
		}
	}
	if e.restore != nil {
		slices.Reverse(out)
	}
	return out
}

// verifyPhase checks the release's workloads run the pinned images and
// are ready.
func verifyPhase() phase {
	return phase{
		name: PhaseVerify, title: "verifying images and health",
		plan: func(_ context.Context, e *env) (PhasePlan, error) {
			n := len(e.workloads(false))
			summary := fmt.Sprintf("check that the %d managed workloads run the pinned images and are Available", n)
			if addr := e.probeAddress(); addr != "" {
				summary += ", and that the ingress gateway answers on http://" + addr + "/"
			}
			return PhasePlan{Workloads: n, Summary: summary}, nil
		},
		run: verifyRun,
	}
}

// moveAdvice says how to move an installed release to another: only a
// command the planner accepts from that state.
func moveAdvice(cat *catalog.Catalog, installed, target string) string {
	if _, err := cat.Plan(installed, target, nil, catalog.PlanOptions{}); err == nil {
		return fmt.Sprintf("move to %s with `tmbox upgrade --to %s`", target, target)
	}
	return downgradeAdvice(cat, installed, target)
}
