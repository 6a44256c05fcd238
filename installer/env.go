package installer

import (
	"context"
	"errors"
	"fmt"
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
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/installer/provider"
	"github.com/tmbox/tmbox/installer/wait"
)

// env is what phases share during one operation.
type env struct {
	opts    *Options
	cfg     *rest.Config
	dyn     dynamic.Interface
	client  kubernetes.Interface
	mapper  meta.ResettableRESTMapper
	applier *apply.Applier
	waiter  *wait.Waiter
	store   *stateStore
	state   *State
	op      *Operation
	// jobOperation labels the Jobs this run creates (default: op's ID;
	// a rollback creates its own).
	jobOperation string

	catalog       *catalog.Catalog
	release       *catalog.Release
	serverVersion *version.Version
	desired       *desired
	// bundle is the verified, extracted bundle of an air-gapped install.
	bundle *bundle.Extracted
	// kind is the kind cluster tmbox laid down, if it did.
	kind *provider.Kind
}

// RESTConfig loads the cluster configuration as kubectl does: kubeconfig
// (or KUBECONFIG, or ~/.kube/config, or in-cluster) and context.
func RESTConfig(kubeconfig, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	// An install applies several hundred objects; the client-go defaults
	// (5 QPS, burst 10) would throttle it for a minute.
	cfg.QPS, cfg.Burst = 100, 200
	cfg.UserAgent = "tmbox"
	return cfg, nil
}

// warningLogger sends the apiserver's warnings (e.g. about CRD schema
// formats) to the debug log instead of stderr: the library never prints.
type warningLogger struct {
	log interface{ Debug(string, ...any) }
}

func (w warningLogger) HandleWarningHeader(code int, agent, text string) {
	w.log.Debug("apiserver warning", "code", code, "text", text)
}

// open connects to the cluster cfg names, or, when cfg is nil, to the one
// the options' kubeconfig and context select.
func open(cfg *rest.Config, opts *Options) (*env, error) {
	if cfg == nil {
		var err error
		if cfg, err = RESTConfig(opts.Kubeconfig, opts.Context); err != nil {
			return nil, err
		}
	}
	return connect(cfg, opts)
}

// connect builds the clients for a cluster.
func connect(cfg *rest.Config, opts *Options) (*env, error) {
	if opts.Logger == nil || opts.Reporter == nil {
		if err := opts.Validate(); err != nil {
			return nil, err
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = warningLogger{opts.Logger}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	e := &env{opts: opts, cfg: cfg, dyn: dyn, client: client, mapper: mapper, store: &stateStore{Client: client}}
	md, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	e.applier = &apply.Applier{Dynamic: dyn, Metadata: md, Mapper: mapper, Log: opts.Logger}
	e.waiter = &wait.Waiter{Dynamic: dyn, Client: client, Log: opts.Logger}
	return e, nil
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
	if e.op == nil {
		return nil
	}
	var rec *PhaseRecord
	for i := range e.op.Phases {
		if e.op.Phases[i].Name == name && e.op.Phases[i].Started.Equal(start) {
			rec = &e.op.Phases[i]
		}
	}
	if rec == nil {
		e.op.Phases = append(e.op.Phases, PhaseRecord{Name: name, Started: start, Result: ResultRunning})
		rec = &e.op.Phases[len(e.op.Phases)-1]
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
	if !finished {
		// A phase's start is kept in memory and written with the next
		// save (its inventory, or its end): a no-op phase writes once.
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
	if cur := e.state.Current(); cur != nil && cur.ID == id {
		op := *cur
		e.op = &op
		e.report(Event{Type: EventInfo, Message: fmt.Sprintf("resuming %s, interrupted after %s", id, lastPhase(cur))})
		return e.saveState(ctx)
	} else if cur != nil {
		now := time.Now()
		cur.Result, cur.Error, cur.Finished = ResultFailed, "interrupted; superseded by "+id, &now
	}
	e.state.Journal = append(e.state.Journal, Operation{ID: id, Kind: kind, From: from, To: to, Started: time.Now(), Result: ResultRunning})
	op := e.state.Journal[len(e.state.Journal)-1]
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
