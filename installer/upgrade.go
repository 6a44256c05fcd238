package installer

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// upgradeEnv prepares an environment and the plan from the cluster's state.
//
// It fetches, verifies and renders every hop's objects once; Run applies
// those same objects.
func (u *Upgrade) prepare(ctx context.Context, details bool) (*env, *UpgradePlan, []*desired, catalog.Source, error) {
	opts := &u.Options
	if opts.Release == "" {
		return nil, nil, nil, nil, errors.New("the target release is required (--to)")
	}
	explicitComponents := len(opts.Components) > 0
	if err := opts.Validate(); err != nil {
		return nil, nil, nil, nil, err
	}
	cat, err := catalog.Load(opts.CatalogFile)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if _, err := cat.Release(opts.Release); err != nil {
		return nil, nil, nil, nil, err
	}
	src, err := opts.source()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	e, err := open(u.Config, opts)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	e.catalog = cat
	if e.state, err = e.store.Load(ctx); err != nil {
		return nil, nil, nil, nil, err
	}
	if e.state.Release == "" {
		return nil, nil, nil, nil, errors.New("no tmbox release is installed on this cluster: use tmbox install")
	}
	if cur := e.state.Current(); cur != nil && cur.Kind == "install" {
		return nil, nil, nil, nil, fmt.Errorf("the install %s did not finish; re-run tmbox install --release %s first", cur.ID, cur.To)
	}
	if !explicitComponents {
		opts.Components = nil
		for _, name := range catalog.ComponentNames() {
			if _, ok := e.state.Components[name]; ok {
				opts.Components = append(opts.Components, name)
			}
		}
	}
	info, err := e.client.Discovery().ServerVersion()
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("cluster unreachable: %w", err)
	}
	kube, err := catalog.ParseKubernetesVersion(info.GitVersion)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	e.serverVersion = kube
	plan, err := cat.Plan(e.state.Release, opts.Release, kube, catalog.PlanOptions{AllowDowngrade: u.AllowDowngrade})
	if plan == nil {
		return nil, nil, nil, nil, err
	}
	up := &UpgradePlan{Plan: plan}
	if err != nil {
		return e, up, nil, src, err
	}
	// Fetch and verify every hop's manifests before any write, and count
	// what each hop would do: hop 1 against the live cluster, later hops
	// against the release before them.
	var hops []*desired
	var prev *desired
	for i, h := range plan.Hops {
		rel, _ := cat.Release(h.To)
		if opts.IstioOverlay != "" {
			if istio, _ := rel.Component(catalog.Istio); istio.Source == catalog.SourceCompiledIn {
				if err := ValidateIstioOverlay(opts.IstioOverlay, istio); err != nil {
					return nil, nil, nil, nil, err
				}
			}
		}
		e.report(Event{Type: EventInfo, Message: fmt.Sprintf("release %s: fetching and verifying manifests from %s", rel.Name, src.Name())})
		d, err := objectsFor(ctx, src, rel, opts.Components, overlayFor(rel, opts))
		if err != nil {
			return nil, nil, nil, nil, err
		}
		diffs, err := e.diffHop(ctx, i == 0, prev, d, details)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		up.Changes = append(up.Changes, diffs)
		hops = append(hops, d)
		prev = d
	}
	return e, up, hops, src, nil
}

// overlayFor drops the Istio overlay for releases whose Istio is not
// compiled in (it cannot apply there).
func overlayFor(rel *catalog.Release, opts *Options) *Options {
	if istio, _ := rel.Component(catalog.Istio); istio.Source != catalog.SourceCompiledIn && opts.IstioOverlay != "" {
		o := *opts
		o.IstioOverlay = ""
		return &o
	}
	return opts
}

// diffHop counts adds, changes and prunes per component.
func (e *env) diffHop(ctx context.Context, live bool, prev, next *desired, details bool) ([]ComponentDiff, error) {
	var out []ComponentDiff
	for _, name := range catalog.ComponentNames() {
		if !slices.Contains(e.opts.Components, name) {
			continue
		}
		d := ComponentDiff{Component: name}
		var current map[apply.ObjectKey]string
		if live {
			var plain []*apply.Object
			for _, o := range next.byComponent[name] {
				if !o.Create {
					plain = append(plain, o)
				}
			}
			hashes, err := e.applier.LiveHashes(ctx, plain)
			if err != nil {
				return nil, err
			}
			current = map[apply.ObjectKey]string{}
			for _, k := range e.state.Inventory[name] {
				current[k] = hashes[k]
			}
		} else {
			current = map[apply.ObjectKey]string{}
			for _, o := range prev.byComponent[name] {
				if !o.Create {
					current[apply.KeyOf(o.Unstructured)] = o.GetAnnotations()[apply.AnnotationHash]
				}
			}
		}
		seen := map[apply.ObjectKey]bool{}
		for _, o := range next.byComponent[name] {
			if o.Create {
				d.Add++
				if details {
					d.Details = append(d.Details, "create "+o.GetKind()+" "+o.GetNamespace()+"/"+o.GetGenerateName()+"*")
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
	_, plan, _, _, err := u.prepare(ctx, details)
	return plan, err
}

// Run performs the upgrade.
func (u *Upgrade) Run(ctx context.Context) error {
	e, plan, hops, src, err := u.prepare(ctx, false)
	if err != nil {
		return err
	}
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
			fromObjs = hops[i-1]
		}
		if err := e.runHop(ctx, src, fromObjs, hops[i], h, u.NoRollback); err != nil {
			return fmt.Errorf("hop %d/%d %s: %w", i+1, len(plan.Hops), h.Name(), err)
		}
	}
	return nil
}

// runHop moves every component from one release to the next, verifies,
// and rolls back when anything fails.
func (e *env) runHop(ctx context.Context, src catalog.Source, fromObjs, toObjs *desired, h catalog.Hop, noRollback bool) error {
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
	err := runPhases(ctx, e, hopPhases())
	if err == nil {
		e.state.Release = to.Name
		e.state.OptionsDigest = e.opts.Digest()
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
	e.jobOperation = id + "-rollback"
	defer func() { e.jobOperation = "" }()
	rerr := e.useRelease(rctx, src, from, fromObjs)
	if rerr == nil {
		rerr = runPhases(rctx, e, hopPhases())
	}
	now := time.Now()
	e.op.Finished = &now
	if rerr != nil {
		e.op.Result = ResultFailed
		e.op.Error = fmt.Sprintf("%v; rollback to %s failed too: %v", err, from.Name, rerr)
		_ = e.saveState(rctx)
		return errors.New(e.op.Error)
	}
	e.op.Result = ResultRolledBack
	e.op.Error = err.Error()
	e.state.Release = from.Name
	if serr := e.saveState(rctx); serr != nil {
		return errors.Join(err, serr)
	}
	return &RolledBackError{Err: err, To: from.Name}
}

// RolledBackError says an upgrade hop failed and the cluster was rolled
// back to a healthy release.
type RolledBackError struct {
	// Err is why the hop failed.
	Err error
	// To is the release the cluster runs again.
	To string
}

func (e *RolledBackError) Error() string {
	return fmt.Sprintf("%v; rolled back to %s, which is healthy", e.Err, e.To)
}

// Unwrap returns why the hop failed.
func (e *RolledBackError) Unwrap() error { return e.Err }

// useRelease points the environment at a release and its verified
// objects, fetching them unless d already holds them.
func (e *env) useRelease(ctx context.Context, src catalog.Source, rel *catalog.Release, d *desired) error {
	if d == nil {
		var err error
		if d, err = objectsFor(ctx, src, rel, e.opts.Components, overlayFor(rel, e.opts)); err != nil {
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
	for _, p := range installPhases(false) {
		if p.name != PhaseCluster && p.name != PhaseImages {
			out = append(out, p)
		}
	}
	return out
}

// String renders a diff line.
func (d ComponentDiff) String() string {
	return fmt.Sprintf("%s: +%d ~%d -%d (=%d)", d.Component, d.Add, d.Change, d.Prune, d.Unchanged)
}
