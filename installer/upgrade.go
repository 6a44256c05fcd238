package installer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
)

// ResultRolledBack marks an upgrade hop that failed and was rolled back to
// its starting release.
const ResultRolledBack = "rolled-back"

// Upgrade moves an installed cluster to a target release, one Knative minor
// per hop, every component together. A hop that fails is rolled back to its
// starting release (unless NoRollback), and the upgrade stops.
type Upgrade struct {
	Options
	// Config, when set, is used instead of Kubeconfig/Context.
	Config *rest.Config
	// AllowDowngrade permits moving back one minor.
	AllowDowngrade bool
	// NoRollback leaves a failed hop as it is, for debugging.
	NoRollback bool
	// Confirm, when set, is shown the plan before any write and may refuse.
	Confirm func(*UpgradePlan) error
}

// UpgradePlan is a plan checked against the live cluster, with what each
// hop would add, change and prune per component.
type UpgradePlan struct {
	*catalog.Plan
	// Changes per hop, per component.
	Changes [][]ComponentDiff `json:"changes"`
}

// ComponentDiff counts one component's object changes within a hop.
type ComponentDiff struct {
	Component string `json:"component"`
	Add       int    `json:"add"`
	Change    int    `json:"change"`
	Prune     int    `json:"prune"`
	Unchanged int    `json:"unchanged"`
	// Details lists the objects, when asked for.
	Details []string `json:"details,omitempty"`
}

// upgradeRun is an upgrade prepared from the cluster's state: its
// session, its plan against the live cluster, and every hop's objects,
// fetched, verified and rendered once (Run applies those same objects).
type upgradeRun struct {
	e    *env
	plan *UpgradePlan
	hops []*desired
}

// prepare resolves the options, reads the state and plans the hops.
//
// With lock, the run takes the cluster's lock as soon as it is connected.
func (u *Upgrade) prepare(ctx context.Context, details, lock bool) (*upgradeRun, error) {
	if u.Release == "" {
		return nil, &SettingError{Setting: "to", Err: errors.New("the target release is required (--to)")}
	}
	// An upgrade moves an installed cluster: it lays nothing down, so the
	// target is the kubeconfig's cluster even when the settings also
	// describe a kind cluster to create.
	opts := u.Options
	opts.CreateCluster = false
	r, err := resolve(ctx, opts, target{config: u.Config})
	var missing *missingFromBundleError
	if errors.As(err, &missing) {
		// The bundle to make holds the whole walk: from the installed
		// release, which only the cluster knows.
		if installed := u.installedRelease(ctx); installed != "" {
			missing.From = installed
		}
	}
	if err != nil {
		return nil, err
	}
	e := newEnv(r)
	ok := false
	defer func() {
		if !ok {
			e.releaseLock()
			r.cleanup()
		}
	}()
	cfg, err := r.provider.Ensure(ctx)
	if err != nil {
		return nil, err
	}
	if err := e.connect(cfg); err != nil {
		return nil, err
	}
	if lock {
		e.lockCommand = "upgrade to " + u.Release
		if err := e.takeLock(ctx); err != nil {
			return nil, err
		}
	}
	if err := e.loadState(ctx); err != nil {
		return nil, err
	}
	if e.state.Release == "" {
		return nil, fmt.Errorf("no tmbox release is installed on this cluster: use `tmbox install --release %s`", u.Release)
	}
	if err := e.renderFromState(ctx); err != nil {
		return nil, err
	}
	if cur := e.state.Current(); cur != nil && cur.Kind == "install" {
		return nil, fmt.Errorf("the install %s did not finish; re-run `tmbox install --release %s` first", cur.ID, cur.To)
	}
	if len(u.Components) == 0 {
		// What is installed is what moves.
		e.opts.Components = nil
		for _, name := range catalog.ComponentNames() {
			if _, ok := e.state.Components[name]; ok {
				e.opts.Components = append(e.opts.Components, name)
			}
		}
	}
	info, err := e.client.Discovery().ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("cluster unreachable: %w", err)
	}
	kube, err := catalog.ParseKubernetesVersion(info.GitVersion)
	if err != nil {
		return nil, err
	}
	e.serverVersion = kube
	if err := e.bundleHoldsWalk(e.state.Release, r.release.Name); err != nil {
		return nil, err
	}
	plan, err := r.catalog.Plan(e.state.Release, r.release.Name, kube, catalog.PlanOptions{AllowDowngrade: u.AllowDowngrade})
	if plan == nil {
		names := r.catalog.ReleaseNames()
		if slices.Index(names, r.release.Name) < slices.Index(names, e.state.Release) {
			err = fmt.Errorf("%w; %s", err, downgradeAdvice(r.catalog, e.state.Release, r.release.Name))
		}
		return nil, err
	}
	run := &upgradeRun{e: e, plan: &UpgradePlan{Plan: plan}}
	if err != nil {
		ok = true
		return run, err
	}
	// Fetch and verify every hop's manifests before any write, and count
	// what each hop would do: hop 1 against the live cluster, later hops
	// against the release before them.
	var prev *desired
	for i, h := range plan.Hops {
		rel, _ := r.catalog.Release(h.To)
		if istio, _ := rel.Component(catalog.Istio); istio.Source == catalog.SourceCompiledIn {
			if err := checkOverlay(e.render.istioOverlay, rel); err != nil {
				return nil, err
			}
		}
		e.reportDroppedOverrides(prevRelease(prev), rel)
		e.report(Event{Type: EventInfo, Message: fmt.Sprintf("release %s: fetching and verifying manifests from %s", rel.Name, r.source.Name())})
		d, err := objectsFor(ctx, r.source, rel, e.opts.Components, r.render)
		if err != nil {
			return nil, fmt.Errorf("hop %d/%d %s: %w", i+1, len(plan.Hops), h.Name(), err)
		}
		diffs, err := e.diffComponents(ctx, e.selectedComponents(), i == 0, prev, d, details)
		if err != nil {
			return nil, err
		}
		run.plan.Changes = append(run.plan.Changes, diffs)
		run.hops = append(run.hops, d)
		prev = d
	}
	if ov := e.render.istioOverlay; ov != nil && prev != nil && overlayApplies(prev.release) != nil {
		e.report(Event{Type: EventInfo, Message: fmt.Sprintf("release %s installs Istio from its pinned manifests: the Istio overlay %s does not apply to it and is no longer kept", prev.release.Name, ov.name())})
	}
	ok = true
	return run, nil
}

// installedRelease reads the release installed on the cluster ("" when
// it cannot tell), for advice: no bundle is opened.
func (u *Upgrade) installedRelease(ctx context.Context) string {
	opts := u.Options
	opts.Bundle, opts.Registry, opts.BundleKey, opts.RequireSignature = "", "", "", false
	r, err := resolveTarget(opts, target{config: u.Config})
	if err != nil {
		return ""
	}
	cfg, err := r.provider.Find(ctx)
	if err != nil || cfg == nil {
		return ""
	}
	e := newEnv(r)
	if e.connect(cfg) != nil || e.loadState(ctx) != nil {
		return ""
	}
	return e.state.Release
}

// selectedComponents lists the selected components in install order.
func (e *env) selectedComponents() []string {
	var out []string
	for _, name := range catalog.ComponentNames() {
		if slices.Contains(e.opts.Components, name) {
			out = append(out, name)
		}
	}
	return out
}

// diffComponents counts adds, changes and prunes of the named components:
// against the live cluster, or against prev (the release before).
func (e *env) diffComponents(ctx context.Context, names []string, live bool, prev, next *desired, details bool) ([]ComponentDiff, error) {
	var out []ComponentDiff
	for _, name := range names {
		d := ComponentDiff{Component: name}
		var current map[apply.ObjectKey]string
		// Whether the component is on the cluster, and at which version
		// (for its post-install Jobs): a plan without a cluster is of a
		// cluster yet to be created.
		absent, version := true, ""
		if live {
			l, err := e.applier.ReadLive(ctx, next.byComponent[name])
			if err != nil {
				return nil, err
			}
			hashes := l.Hashes()
			current, absent = hashes, l.Absent(next.byComponent[name])
			if e.state != nil {
				for _, k := range e.state.Inventory[name] {
					current[k] = hashes[k]
				}
				version = e.state.Components[name].Version
			}
		} else if prev != nil {
			current = map[apply.ObjectKey]string{}
			for _, o := range prev.byComponent[name] {
				if !o.Create {
					current[apply.KeyOf(o.Unstructured)] = o.GetAnnotations()[apply.AnnotationHash]
				}
			}
			absent = false
			if c, ok := prev.release.Component(name); ok {
				version = c.Version
			}
		}
		if current == nil {
			current = map[apply.ObjectKey]string{}
		}
		var nextVersion string
		if c, ok := next.release.Component(name); ok {
			nextVersion = c.Version
		}
		jobs, whyNot := e.jobsDue(nextVersion, version, absent)
		seen := map[apply.ObjectKey]bool{}
		for _, o := range next.byComponent[name] {
			if o.Create {
				job := o.GetKind() + " " + o.GetNamespace() + "/" + o.GetGenerateName() + "*"
				if !jobs {
					if details {
						d.Details = append(d.Details, "skip "+job+" ("+whyNot+")")
					}
					continue
				}
				d.Add++
				if details {
					d.Details = append(d.Details, "create "+job)
				}
				continue
			}
			k := apply.KeyOf(o.Unstructured)
			seen[k] = true
			h, ok := current[k]
			switch {
			case !ok:
				d.Add++
				if details {
					d.Details = append(d.Details, "add "+k.String())
				}
			case h != o.GetAnnotations()[apply.AnnotationHash]:
				d.Change++
				if details {
					d.Details = append(d.Details, "change "+k.String())
				}
			default:
				d.Unchanged++
			}
		}
		for k := range current {
			if _, still := next.keys[k]; !seen[k] && !still && k.Kind != "CustomResourceDefinition" {
				d.Prune++
				if details {
					d.Details = append(d.Details, "prune "+k.String())
				}
			}
		}
		slices.Sort(d.Details)
		out = append(out, d)
	}
	return out, nil
}

// Plan returns the plan against the live cluster without writing anything.
func (u *Upgrade) Plan(ctx context.Context, details bool) (*UpgradePlan, error) {
	run, err := u.prepare(ctx, details, false)
	if run == nil {
		return nil, err
	}
	defer run.e.cleanup()
	return run.plan, err
}

// Run performs the upgrade (with DryRun: reports the plan as one
// EventPlan and writes nothing).
func (u *Upgrade) Run(ctx context.Context) error {
	if u.DryRun {
		plan, err := u.Plan(ctx, true)
		if plan != nil {
			msg := fmt.Sprintf("%d hop(s) from %s to %s", len(plan.Hops), plan.From, plan.To)
			u.Options.withDefaults().Reporter.Report(Event{Time: time.Now(), Type: EventPlan, Message: msg, Upgrade: plan})
		}
		return err
	}
	run, err := u.prepare(ctx, false, true)
	if err != nil {
		if run != nil {
			run.e.releaseLock()
			run.e.cleanup()
		}
		return err
	}
	e, plan := run.e, run.plan
	defer e.cleanup()
	defer e.releaseLock()
	if len(plan.Hops) == 0 {
		e.report(Event{Type: EventInfo, Message: fmt.Sprintf("release %s is already installed: nothing to do", plan.To)})
		return nil
	}
	if u.Confirm != nil {
		if err := u.Confirm(plan); err != nil {
			return err
		}
	}
	for i, h := range plan.Hops {
		var fromObjs *desired // the previous hop's target; fetched on rollback for the first
		if i > 0 {
			fromObjs = run.hops[i-1]
		}
		if err := e.runHop(ctx, fromObjs, run.hops[i], h, u.NoRollback); err != nil {
			return fmt.Errorf("hop %d/%d %s: %w", i+1, len(plan.Hops), h.Name(), err)
		}
	}
	// Add-ons move after the last hop; a hop's rollback left them at
	// their last good revision. A failed add-on upgrade is rolled back by
	// Helm and reported; the stack stays at the new release.
	if len(e.addons) > 0 {
		if err := (&runner{e: e}).run(ctx, []phase{addonsPhase()}); err != nil {
			return fmt.Errorf("upgraded to %s, but: %w", plan.To, err)
		}
	}
	return nil
}

// runHop moves every component from one release to the next, verifies,
// and rolls back when anything fails.
func (e *env) runHop(ctx context.Context, fromObjs, toObjs *desired, h catalog.Hop, noRollback bool) error {
	from, _ := e.catalog.Release(h.From)
	to := toObjs.release
	if !to.AllowsKubernetes(e.serverVersion) {
		return fmt.Errorf("release %s needs Kubernetes %s; the cluster runs %s", to.Name, to.KubernetesRange(), e.serverVersion.Original())
	}
	kind := "upgrade"
	if h.Downgrade {
		kind = "downgrade"
	}
	id := fmt.Sprintf("%s-%s-%s", kind, from.Name, to.Name)
	if err := e.beginOperation(ctx, kind, id, from.Name, to.Name); err != nil {
		return err
	}
	e.report(Event{Type: EventInfo, Message: fmt.Sprintf("%s %s", kind, h.Name())})
	e.release, e.desired = to, toObjs
	e.touched = nil
	phases := hopPhases()
	if e.bundle != nil {
		// This hop's release images reach the registry (what it lacks) or
		// the kind nodes before the hop applies anything; a later hop's
		// images wait for that hop.
		phases = append([]phase{hopImagesPhase()}, phases...)
	}
	err := (&runner{e: e}).run(ctx, phases)
	if err == nil {
		e.state.Release = to.Name
		e.state.OptionsDigest = e.opts.Digest(e.overlayDigest())
		e.state.Platform = e.platformState()
		e.state.IstioOverlay = e.overlayState()
		e.state.URLPattern = e.urlPattern()
		e.state.Registry = e.opts.Registry
		e.state.ImageOverrides = e.overridesState()
		return e.endOperation(ctx, nil)
	}
	if ctx.Err() != nil || noRollback {
		why := "interrupted"
		if noRollback {
			why = "--no-rollback: the cluster is left as the failed hop left it"
		}
		e.report(Event{Type: EventInfo, Message: fmt.Sprintf("hop %s failed (%s); re-run tmbox upgrade to resume", h.Name(), why)})
		return e.endOperation(ctx, fmt.Errorf("%w (%s)", err, why))
	}
	// Roll back: re-apply the starting release, prune what only the new
	// one had, wait for health.
	e.report(Event{Type: EventInfo, Message: fmt.Sprintf("hop %s failed: rolling back to %s: %v", h.Name(), from.Name, err)})
	rctx := context.WithoutCancel(ctx)
	e.jobOperation, e.rollingBack = id+"-rollback", true
	defer func() { e.jobOperation, e.rollingBack = "", false }()
	rerr := e.useRelease(rctx, from, fromObjs)
	if rerr == nil {
		// Only what the hop began to change goes back, last first; the
		// components it never reached are still at the start release.
		e.restore = slices.Clone(e.touched)
		slices.Reverse(e.restore)
		e.report(Event{Type: EventInfo, Message: fmt.Sprintf("rolling back %s to %s", strings.Join(e.restore, ", "), from.Name)})
		rerr = (&runner{e: e}).run(rctx, rollbackPhases(e.restore))
		e.restore = nil
	}
	now := time.Now()
	e.op.Finished = &now
	if rerr != nil {
		failed := &RollbackFailedError{Err: err, RollbackErr: rerr, To: from.Name}
		e.op.Result = ResultFailed
		e.op.Error = failed.Error()
		_ = e.saveState(rctx)
		return failed
	}
	e.op.Result = ResultRolledBack
	e.op.Error = err.Error()
	e.state.Release = from.Name
	if serr := e.saveState(rctx); serr != nil {
		return errors.Join(err, serr)
	}
	return &RolledBackError{Err: err, To: from.Name}
}

// RollbackFailedError says an upgrade hop failed and rolling it back
// failed too; both causes are kept.
type RollbackFailedError struct {
	// Err is why the hop failed.
	Err error
	// RollbackErr is why the rollback failed.
	RollbackErr error
	// To is the release the rollback aimed at.
	To string
}

// Error gives both causes.
func (e *RollbackFailedError) Error() string {
	return fmt.Sprintf("%v; rollback to %s failed too: %v", e.Err, e.To, e.RollbackErr)
}

// Unwrap returns both causes.
func (e *RollbackFailedError) Unwrap() []error { return []error{e.Err, e.RollbackErr} }

// RolledBackError says an upgrade hop failed and the cluster was rolled
// back to a healthy release.
type RolledBackError struct {
	// Err is why the hop failed.
	Err error
	// To is the release the cluster runs again.
	To string
}

// Error gives why the hop failed and the release the cluster runs.
func (e *RolledBackError) Error() string {
	return fmt.Sprintf("%v; rolled back to %s, which is healthy", e.Err, e.To)
}

// Unwrap returns why the hop failed.
func (e *RolledBackError) Unwrap() error { return e.Err }

// useRelease points the environment at a release and its verified
// objects, fetching them unless d already holds them.
func (e *env) useRelease(ctx context.Context, rel *catalog.Release, d *desired) error {
	if d == nil {
		var err error
		if d, err = objectsFor(ctx, e.source, rel, e.opts.Components, e.render); err != nil {
			return err
		}
	}
	e.release, e.desired = rel, d
	return nil
}

// hopPhases are the phases of a hop: the install phases after the cluster
// is known to be there.
func hopPhases() []phase {
	var out []phase
	for _, p := range installPhases() {
		if p.name != PhasePreflight && p.name != PhaseCluster && p.name != PhaseImages && p.name != PhaseAddons {
			out = append(out, p)
		}
	}
	return out
}

// hopImagesPhase brings the images of an upgrade hop's target release
// from the bundle to where the cluster runs them, before the hop applies
// anything: pushed to the registry (those it lacks) or imported into the
// kind nodes. install's images phase brings every image of the bundle at
// once; a hop brings only its own release's.
func hopImagesPhase() phase {
	return phase{
		name: PhaseImages, title: "images", writes: true,
		start: func(e *env) string { return "images of release " + e.release.Name },
		plan: func(_ context.Context, e *env) (PhasePlan, error) {
			imgs, err := e.releaseImages()
			if err != nil {
				return PhasePlan{}, err
			}
			where := "into the kind nodes"
			if e.opts.Registry != "" {
				where = "to " + e.opts.Registry + " (those it lacks)"
			}
			return PhasePlan{Images: len(imgs), Summary: fmt.Sprintf("bring release %s's %d images from the bundle %s", e.release.Name, len(imgs), where)}, nil
		},
		run: func(ctx context.Context, e *env) (string, error) { return e.bringReleaseImages(ctx) },
	}
}

// rollbackPhases are the phases that converge the given components back,
// in reverse install order, then verify.
func rollbackPhases(components []string) []phase {
	var out []phase
	for _, p := range hopPhases() {
		if p.name == PhaseVerify {
			continue
		}
		if slices.ContainsFunc(p.components, func(c string) bool { return slices.Contains(components, c) }) {
			out = append(out, p)
		}
	}
	slices.Reverse(out)
	return append(out, verifyPhase())
}

// String renders a diff line.
func (d ComponentDiff) String() string {
	return fmt.Sprintf("%s: +%d ~%d -%d (=%d)", d.Component, d.Add, d.Change, d.Prune, d.Unchanged)
}

// bundleHoldsWalk refuses, before anything is written, an upgrade from a
// bundle that lacks a release of the walk: the installed release (a failed
// first hop rolls back to it), every minor in between and the target.
func (e *env) bundleHoldsWalk(installed, target string) error {
	if e.bundle == nil {
		return nil
	}
	major, from, okFrom := catalog.ParseReleaseName(installed)
	targetMajor, to, okTo := catalog.ParseReleaseName(target)
	if !okFrom || !okTo || major != targetMajor {
		return nil // the planner refuses such a move, naming it
	}
	if from > to {
		from, to = to, from
	}
	var need, missing []string
	for m := from; m <= to; m++ {
		name := fmt.Sprintf("%d.%d", major, m)
		need = append(need, name)
		if _, err := e.catalog.Release(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &SettingError{Setting: "bundle", Err: fmt.Errorf("bundle %s holds release %s; moving %s to %s needs %s: missing %s (`tmbox bundle create --from %s --to %s`)",
		e.opts.Bundle, strings.Join(e.catalog.ReleaseNames(), ", "), installed, target, strings.Join(need, ", "), strings.Join(missing, ", "), installed, target)}
}

// downgradeAdvice says how to move installed back to the older target
// with commands the planner accepts from that state: one `tmbox upgrade
// --to R --allow-downgrade` per release on the way, or, when the catalog
// has no such walk, uninstalling and installing target.
func downgradeAdvice(cat *catalog.Catalog, installed, target string) string {
	names := cat.ReleaseNames()
	from, to := slices.Index(names, installed), slices.Index(names, target)
	ok := to >= 0 && from > to
	var steps []string
	for i := from - 1; ok && i >= to; i-- {
		_, err := cat.Plan(names[i+1], names[i], nil, catalog.PlanOptions{AllowDowngrade: true})
		ok = err == nil
		steps = append(steps, fmt.Sprintf("`tmbox upgrade --to %s --allow-downgrade`", names[i]))
	}
	switch {
	case ok && len(steps) == 1:
		return fmt.Sprintf("move back to %s with %s", target, steps[0])
	case ok:
		return fmt.Sprintf("move back one minor at a time: %s", strings.Join(steps, ", then "))
	}
	return fmt.Sprintf("tmbox cannot move %s to %s (Knative downgrades one minor at a time): `tmbox uninstall`, then `tmbox install --release %s`", installed, target, target)
}

// finishAdvice is the command that finishes an unfinished upgrade or
// downgrade hop (its run resumes the hop).
func finishAdvice(op *Operation) string {
	if op.Kind == "downgrade" {
		return fmt.Sprintf("`tmbox upgrade --to %s --allow-downgrade`", op.To)
	}
	return fmt.Sprintf("`tmbox upgrade --to %s`", op.To)
}
