package installer

import (
	"context"
	"fmt"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tmbox/tmbox/installer/apply"
)

// pipeline converges the components of consecutive component phases
// together (a stage): every component's namespaces and CRDs in one wave;
// while the API server establishes the CRDs, each component's early
// objects (apply.Wave.Early); then each one's late objects as soon as
// what it needs (componentNeeds) is there, its readiness wait overlapping
// the other components' work. The runner still reports the phases one
// after another: a phase's events are held until the runner starts it,
// and the runner awaits the phase's components. Only the runner's
// goroutine reads or writes the state; the pipeline's goroutines touch the
// cluster. docs/development.md describes it.
type pipeline struct {
	e      *env
	cancel context.CancelFunc
	// line: each component waits for the one before it, even for its
	// early objects (a rollback).
	line bool
	// comps are the stage's components in install order; byPhase groups
	// them by phase.
	comps   []*componentRun
	byPhase map[string][]*componentRun
	wg      sync.WaitGroup

	mu      sync.Mutex
	started map[string]bool    // phases the runner started
	held    map[string][]Event // events of phases not started yet
}

// componentRun is one component's converge in a pipeline.
type componentRun struct {
	name, phase, version string
	objs                 []*apply.Object
	// old is the component's inventory before this run; keys its
	// objects' keys in this release.
	old, keys []apply.ObjectKey
	needs     []need
	// reached[l] is closed when the component reaches level l; done when
	// it finished, with msg or err.
	reached map[level]chan struct{}
	mu      sync.Mutex // reaching levels
	done    chan struct{}
	msg     string
	err     error
}

// newComponentRun prepares a component of the release for a pipeline.
func (e *env) newComponentRun(phase, name string) *componentRun {
	comp, _ := e.release.Component(name)
	c := &componentRun{name: name, phase: phase, version: comp.Version, objs: e.desired.byComponent[name], done: make(chan struct{}),
		reached: map[level]chan struct{}{}}
	for _, l := range levels() {
		c.reached[l] = make(chan struct{})
	}
	if e.state.Inventory != nil {
		c.old = e.state.Inventory[name]
	}
	for _, o := range c.objs {
		if !o.Create {
			c.keys = append(c.keys, apply.KeyOf(o.Unstructured))
		}
	}
	return c
}

// reach marks a level reached, and the levels it implies.
func (c *componentRun) reach(l level) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range append(l.implies(), l) {
		select {
		case <-c.reached[x]:
		default:
			close(c.reached[x])
		}
	}
}

// startPipeline converges the components of phases (the stage) in the
// background. line makes each component wait for the one before it to be
// ready, instead of following the graph (a rollback's order). Before any
// write it records every component's inventory (old ∪ new, so a crash
// leaves nothing untracked) in one state write and marks them touched.
func (e *env) startPipeline(ctx context.Context, phases []phase, line bool) (*pipeline, error) {
	p := &pipeline{e: e, line: line, byPhase: map[string][]*componentRun{}, started: map[string]bool{}, held: map[string][]Event{}}
	for _, ph := range phases {
		for _, name := range ph.selected(e) {
			c := e.newComponentRun(ph.name, name)
			p.comps = append(p.comps, c)
			p.byPhase[ph.name] = append(p.byPhase[ph.name], c)
		}
	}
	if len(p.comps) == 0 {
		return p, nil
	}
	byName := map[string]*componentRun{}
	for _, c := range p.comps {
		byName[c.name] = c
	}
	for i, c := range p.comps {
		switch {
		case line && i > 0:
			c.needs = []need{{on: p.comps[i-1].name, level: levelReady, why: "converged one after another"}}
		case !line:
			for _, n := range componentNeeds()[c.name] {
				// A component outside the stage was converged by an
				// earlier stage, or is not part of this run.
				if _, in := byName[n.on]; in {
					c.needs = append(c.needs, n)
				}
			}
		}
	}
	if e.state.Inventory == nil {
		e.state.Inventory = map[string][]apply.ObjectKey{}
	}
	grown := false
	for _, c := range p.comps {
		if all := union(c.old, c.keys); len(all) != len(c.old) {
			e.state.Inventory[c.name] = sortedKeys(all)
			grown = true
		}
		if !slices.Contains(e.touched, c.name) {
			e.touched = append(e.touched, c.name)
		}
	}
	if grown {
		if err := e.saveState(ctx); err != nil {
			return nil, err
		}
	}
	ctx, p.cancel = context.WithCancel(ctx)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.run(ctx, byName, e.jobOp())
	}()
	return p, nil
}

// covers reports whether the pipeline converges the phase.
func (p *pipeline) covers(phase string) bool {
	_, ok := p.byPhase[phase]
	return ok
}

// stop cancels what is still running and waits for it.
func (p *pipeline) stop() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
}

// report sends a component's event, or holds it until the runner starts
// the component's phase.
func (p *pipeline) report(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started[ev.Phase] {
		p.held[ev.Phase] = append(p.held[ev.Phase], ev)
		return
	}
	p.e.report(ev)
}

// startPhase marks a phase started, reporting its start event when told
// to (the stage's first phase reports its own, before the pipeline
// exists), then the events its components sent so far.
func (p *pipeline) startPhase(start Event, report bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if report {
		p.e.report(start)
	}
	p.started[start.Phase] = true
	for _, ev := range p.held[start.Phase] {
		p.e.report(ev)
	}
	delete(p.held, start.Phase)
}

// await waits for the phase's components, in order, records each one's
// inventory and version in the state (the runner saves it with the
// phase's end) and returns the phase's summary.
func (p *pipeline) await(ctx context.Context, phase string) (string, error) {
	var summary []string
	for _, c := range p.byPhase[phase] {
		select {
		case <-c.done:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if c.err != nil {
			return "", fmt.Errorf("%s: %w", c.name, c.err)
		}
		e := p.e
		e.state.Inventory[c.name] = sortedKeys(slices.Clone(c.keys))
		if e.state.Components == nil {
			e.state.Components = map[string]ComponentState{}
		}
		e.state.Components[c.name] = ComponentState{Version: c.version, Release: e.release.Name}
		summary = append(summary, c.msg)
	}
	return strings.Join(summary, "; "), nil
}

// run is the stage's work: the live objects read once, every namespace
// and CRD in one wave, then each component by its needs — its objects of
// kinds already served while the wave's CRDs are being Established, the
// rest (custom resources of the wave's CRDs, Jobs) once they are.
func (p *pipeline) run(ctx context.Context, byName map[string]*componentRun, jobOp string) {
	e := p.e
	fail := func(err error) {
		for _, c := range p.comps {
			c.err = err
			close(c.done)
		}
	}
	var all []*apply.Object
	for _, c := range p.comps {
		all = append(all, c.objs...)
	}
	live, err := e.applier.ReadLive(ctx, all)
	if err != nil {
		fail(err)
		return
	}
	region := trace.StartRegion(ctx, "namespaces and CRDs of "+strings.Join(names(p.comps), ", "))
	wave, err := e.applier.SendFirst(ctx, all, live)
	region.End()
	if err != nil {
		fail(err)
		return
	}
	established := make(chan struct{})
	var waveErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(established)
		if waveErr = wave.Wait(ctx); waveErr == nil {
			for _, c := range p.comps {
				c.reach(levelCRDs)
			}
		}
	}()
	for _, c := range p.comps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(c.done)
			c.msg, c.err = p.converge(ctx, c, byName, live, wave, established, &waveErr, jobOp)
		}()
	}
	wg.Wait()
}

// waitNeeds waits until every component c needs has reached the level it
// needs; a needed component that failed fails c.
func (p *pipeline) waitNeeds(ctx context.Context, c *componentRun, byName map[string]*componentRun) error {
	defer trace.StartRegion(ctx, "needs of "+c.name).End()
	for _, n := range c.needs {
		dep := byName[n.on]
		select {
		case <-dep.reached[n.level]:
			continue
		case <-ctx.Done():
			return ctx.Err()
		case <-dep.done:
		}
		select {
		case <-dep.reached[n.level]:
		default:
			return fmt.Errorf("not applied: it needs %s %s (%s), which failed: %w", n.on, n.level, n.why, dep.err)
		}
	}
	return nil
}

// converge applies a component's objects (its namespaces and CRDs are in
// already): the early ones at once, the others once its needs are met and
// the wave's CRDs Established; then it waits until they are ready and
// prunes what the release no longer has. In a line (a rollback) even the
// early objects wait for the component before.
//
// established is closed once the wave's CRDs are Established (or the wait
// failed: *waveErr, read after established is closed).
func (p *pipeline) converge(ctx context.Context, c *componentRun, byName map[string]*componentRun, live *apply.Live, wave *apply.Wave, established <-chan struct{}, waveErr *error, jobOp string) (string, error) {
	e := p.e
	var res apply.ApplyResult
	var early, late, webhooks []*apply.Object
	objs, skipped, why := c.objs, 0, ""
	if due, reason := e.jobsDue(c.version, e.state.Components[c.name].Version, live.Absent(c.objs)); !due {
		if objs, skipped = withoutCreates(c.objs); skipped > 0 {
			why = reason
			e.opts.Logger.Debug("post-install Jobs not run", "component", c.name, "jobs", skipped, "why", why)
		}
	}
	for _, o := range objs {
		switch {
		case apply.First(o):
			if live.Unchanged(o) {
				res.Unchanged++
			} else {
				res.Applied++
			}
		case wave.Early(o):
			early = append(early, o)
		default:
			late = append(late, o)
		}
		if g := o.GroupVersionKind(); g.Group == "admissionregistration.k8s.io" {
			webhooks = append(webhooks, o)
		}
	}
	lateWorkloads := slices.ContainsFunc(late, func(o *apply.Object) bool { return apply.Workload(o) })
	if p.line {
		if err := p.waitNeeds(ctx, c, byName); err != nil {
			return "", err
		}
	}
	t0 := time.Now()
	region := trace.StartRegion(ctx, "apply "+c.name+" (early)")
	r, err := e.applier.ApplyObjects(ctx, early, live)
	region.End()
	if err != nil {
		return "", err
	}
	res = res.Add(r)
	if !lateWorkloads {
		c.reach(levelWorkloads)
	}
	select {
	case <-established:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if *waveErr != nil {
		return "", *waveErr
	}
	if err := p.waitNeeds(ctx, c, byName); err != nil {
		return "", err
	}
	region = trace.StartRegion(ctx, "apply "+c.name)
	r, err = e.applier.ApplyRest(ctx, late, live, jobOp)
	region.End()
	if err != nil {
		return "", err
	}
	res = res.Add(r)
	c.reach(levelApplied)
	t1 := time.Now()
	notify := func(object, reason string) {
		p.report(Event{Type: EventWaiting, Phase: c.phase, Message: object + ": " + reason})
	}
	// Everything, and beside it the webhooks alone: others wait for
	// those. The full wait is the one that reports and fails.
	region = trace.StartRegion(ctx, "wait "+c.name)
	hooksCtx, stopHooks := context.WithCancel(ctx)
	var hooks sync.WaitGroup
	hooks.Add(1)
	go func() {
		defer hooks.Done()
		if e.waiter.WaitReady(hooksCtx, webhooks, jobOp, e.opts.PhaseTimeout, nil) == nil {
			c.reach(levelWebhooks)
		}
	}()
	err = e.waiter.WaitReady(ctx, objs, jobOp, e.opts.PhaseTimeout, notify)
	stopHooks()
	hooks.Wait()
	region.End()
	if err != nil {
		return "", err
	}
	c.reach(levelReady)
	defer trace.StartRegion(ctx, "prune "+c.name).End()
	progress := func(msg string) { p.report(Event{Type: EventProgress, Phase: c.phase, Message: msg}) }
	pruned, err := e.prune(ctx, c.old, progress)
	if err != nil {
		return "", err
	}
	if !e.settingsOnly {
		jobs, err := e.pruneOldJobs(ctx, c.name, jobOp)
		if err != nil {
			return "", err
		}
		pruned += jobs
	}
	e.opts.Logger.Debug("component converged", "component", c.name, "apply", t1.Sub(t0), "wait+prune", time.Since(t1))
	msg := fmt.Sprintf("%s %s: %d applied, %d unchanged, %d jobs created, %d pruned", c.name, c.version, res.Applied, res.Unchanged, res.Created, pruned)
	if skipped > 0 {
		msg += " (post-install Jobs not run: " + why + ")"
	}
	return msg, nil
}

func names(cs []*componentRun) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.name)
	}
	return out
}
