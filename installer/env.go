package installer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-version"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/installer/wait"
)

// env is one run's session: its resolved inputs, the cluster's clients
// once connected, the state and the journal. Phases share it.
type env struct {
	// resolved holds the run's inputs; its opts are the resolved options
	// (defaults filled; never the user's).
	*resolved
	cfg     *rest.Config
	dyn     dynamic.Interface
	client  kubernetes.Interface
	mapper  meta.ResettableRESTMapper
	applier *apply.Applier
	waiter  *wait.Waiter
	store   *stateStore
	state   *State
	op      *Operation
	// pending holds the records of phases that ran before the operation
	// began (preflight, cluster): the journal lives in the cluster.
	pending []PhaseRecord
	// jobOperation labels the Jobs this run creates (default: op's ID;
	// a rollback creates its own).
	jobOperation string
	// rollingBack is a rollback's run: its post-install Jobs always run.
	rollingBack bool
	// settingsOnly is a configure: Jobs are neither created nor pruned.
	settingsOnly bool
	// touched lists, in order, the components this hop began to change
	// (their apply started); restore, during a rollback, the ones to
	// converge back, in that order.
	touched, restore []string
	// lock is the cluster's Lease while this run holds it; lockCommand,
	// when set, says the run writes and must hold it (what it does, for
	// other runs' messages).
	lock         *clusterLock
	lockCommand  string
	lockDeferred bool
	// bundleInNodes says this run's images phase imported every image of
	// the bundle into the kind nodes (the add-ons' among them).
	bundleInNodes bool
	// kindExisting caches whether the kind cluster existed before this
	// run (nil: not asked yet).
	kindExisting *bool

	// release is the release being applied (an upgrade hop's target, or
	// its start while rolling back); desired is its objects.
	release       *catalog.Release
	serverVersion *version.Version
	desired       *desired
	// objectsErr is why the release's objects could not be rendered
	// (preflight reports it instead of failing).
	objectsErr error
}

// newEnv starts a session for resolved inputs; it is not connected yet.
func newEnv(r *resolved) *env {
	return &env{resolved: r, release: r.release}
}

// warningLogger sends the apiserver's warnings (e.g. about CRD schema
// formats) to the debug log instead of stderr: the library never prints.
type warningLogger struct {
	log interface{ Debug(string, ...any) }
}

func (w warningLogger) HandleWarningHeader(code int, agent, text string) {
	w.log.Debug("apiserver warning", "code", code, "text", text)
}

// connect builds the clients for the cluster cfg names.
func (e *env) connect(cfg *rest.Config) error {
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = warningLogger{e.opts.Logger}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	md, err := metadata.NewForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	e.cfg, e.dyn, e.client, e.mapper = cfg, dyn, client, mapper
	e.store = &stateStore{Client: client}
	e.applier = &apply.Applier{Dynamic: dyn, Metadata: md, Mapper: mapper, Log: e.opts.Logger}
	e.waiter = &wait.Waiter{Dynamic: dyn, Client: client, Log: e.opts.Logger}
	return nil
}

// connected reports whether the session has the cluster's clients.
func (e *env) connected() bool { return e.client != nil }

// session resolves the options (for commands that only read the cluster:
// status, uninstall) and connects to the target the options name.
func session(ctx context.Context, opts Options, cfg *rest.Config) (*env, error) {
	r, err := resolveTarget(opts, target{config: cfg})
	if err != nil {
		return nil, err
	}
	e := newEnv(r)
	c, err := r.provider.Ensure(ctx)
	if err != nil {
		return nil, err
	}
	return e, e.connect(c)
}

func (e *env) report(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	e.opts.Reporter.Report(ev)
}

// recordPhase records a phase's start or end in the journal; the end is
// written to the cluster at once.
func (e *env) recordPhase(ctx context.Context, name string, start time.Time, err error, finished bool) error {
	records := &e.pending
	if e.op != nil {
		records = &e.op.Phases
	}
	var rec *PhaseRecord
	for i := range *records {
		if (*records)[i].Name == name && (*records)[i].Started.Equal(start) {
			rec = &(*records)[i]
		}
	}
	if rec == nil {
		*records = append(*records, PhaseRecord{Name: name, Started: start, Result: ResultRunning})
		rec = &(*records)[len(*records)-1]
	}
	if finished {
		now := time.Now()
		rec.Finished = &now
		rec.Result = ResultSucceeded
		if err != nil {
			rec.Result, rec.Error = ResultFailed, err.Error()
			if errors.Is(err, context.Canceled) {
				rec.Result, rec.Error = ResultCancelled, "cancelled"
			}
		}
	}
	if !finished || e.op == nil {
		// A phase's start is kept in memory and written with the next
		// save (its inventory, or its end): a no-op phase writes once.
		// Before the operation begins there is nowhere to write yet.
		return nil
	}
	return e.saveState(ctx)
}

// saveState writes the state with e.op as the journal's last entry.
func (e *env) saveState(ctx context.Context) error {
	if n := len(e.state.Journal); e.op != nil && n > 0 {
		e.state.Journal[n-1] = *e.op
	}
	return e.store.Save(ctx, e.state)
}

// beginOperation appends an operation to the journal, or resumes the
// unfinished one with the same ID.
func (e *env) beginOperation(ctx context.Context, kind, id, from, to string) error {
	if err := e.takeDeferredLock(ctx); err != nil {
		return err
	}
	if cur := e.state.Current(); cur != nil && cur.ID == id {
		op := *cur
		op.Phases = append(op.Phases, e.pending...)
		e.pending = nil
		e.op = &op
		e.report(Event{Type: EventInfo, Message: fmt.Sprintf("resuming %s, interrupted after %s", id, lastPhase(cur))})
		return e.saveState(ctx)
	} else if cur != nil {
		now := time.Now()
		cur.Result, cur.Error, cur.Finished = ResultFailed, "interrupted; superseded by "+id, &now
	}
	e.state.Journal = append(e.state.Journal, Operation{ID: id, Kind: kind, From: from, To: to, Started: time.Now(), Result: ResultRunning})
	op := e.state.Journal[len(e.state.Journal)-1]
	op.Phases = append(op.Phases, e.pending...)
	e.pending = nil
	e.op = &op
	return e.saveState(ctx)
}

// endOperation records the operation's outcome.
func (e *env) endOperation(ctx context.Context, err error) error {
	if e.op == nil {
		return err
	}
	now := time.Now()
	e.op.Finished = &now
	e.op.Result = ResultSucceeded
	if err != nil {
		e.op.Result, e.op.Error = ResultFailed, err.Error()
		if errors.Is(err, context.Canceled) {
			e.op.Result, e.op.Error = ResultCancelled, "cancelled; re-run to converge"
		}
	}
	if serr := e.saveState(context.WithoutCancel(ctx)); serr != nil && err == nil {
		return serr
	}
	return err
}

func lastPhase(op *Operation) string {
	if len(op.Phases) == 0 {
		return "no phase"
	}
	return "phase " + op.Phases[len(op.Phases)-1].Name
}

// clusterSummary says which cluster the run uses.
func (e *env) clusterSummary() string {
	if e.kind != nil {
		return e.kind.Describe()
	}
	return "existing cluster at " + e.cfg.Host
}

// loadDesired fetches, verifies and renders the release's objects.
func (e *env) loadDesired(ctx context.Context) error {
	e.report(Event{Type: EventInfo, Message: fmt.Sprintf("release %s: fetching and verifying manifests from %s", e.release.Name, e.source.Name())})
	d, err := objectsFor(ctx, e.source, e.release, e.opts.Components, e.render)
	if err != nil {
		return err
	}
	if e.settingsOnly {
		// A configure changes settings, not versions: the post-install
		// Jobs do not run again (neither planned nor created).
		for name, objs := range d.byComponent {
			d.byComponent[name] = slices.DeleteFunc(objs, func(o *apply.Object) bool { return o.Create })
		}
	}
	e.desired = d
	return nil
}
