// Package provider lays down or finds the cluster tmbox installs into: a
// kind cluster it creates (or reuses) on this machine, or an existing
// cluster a kubeconfig names. It never prints; kind's output goes to the
// injected *slog.Logger. It must stay light: the installer imports it, not
// the other way round, and it pulls in neither Istio nor Helm.
package provider

import (
	"context"
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Provider lays down or finds the cluster tmbox installs into.
type Provider interface {
	// Name is "kind" or "existing".
	Name() string
	// Describe is one line for plans and logs.
	Describe() string
	// Find returns the cluster's client configuration when using it needs
	// nothing laid down (an existing cluster), or nil when Ensure must
	// create it first (kind). It writes nothing.
	Find(ctx context.Context) (*rest.Config, error)
	// Ensure makes the cluster exist (kind: create or reuse) and returns
	// its client configuration.
	Ensure(ctx context.Context) (*rest.Config, error)
}

// Provider names.
const (
	NameKind     = "kind"
	NameExisting = "existing"
)

// Client settings of every cluster tmbox talks to: an install applies
// several hundred objects and client-go's defaults (5 QPS, burst 10)
// would throttle it for a minute.
const (
	clientQPS       = 100
	clientBurst     = 200
	clientUserAgent = "tmbox"
)

// tune sets tmbox's client settings on a copy of cfg.
func tune(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = clientQPS, clientBurst
	cfg.UserAgent = clientUserAgent
	return cfg
}

// Existing is a cluster tmbox did not create, found as kubectl finds it:
// Kubeconfig (else KUBECONFIG, else ~/.kube/config, else in-cluster) and
// Context (else the current context).
type Existing struct {
	// Kubeconfig is an explicit kubeconfig path (kubectl --kubeconfig).
	Kubeconfig string
	// Context overrides the kubeconfig's current context.
	Context string
	// Config, when set, is the cluster's configuration (tests and
	// embedders); Kubeconfig and Context are then ignored.
	Config *rest.Config
}

var _ Provider = (*Existing)(nil)

// Name returns "existing".
func (e *Existing) Name() string { return NameExisting }

// Describe names the kubeconfig and context Ensure will use.
func (e *Existing) Describe() string {
	if e.Config != nil {
		return "existing cluster at " + e.Config.Host
	}
	where := "the default kubeconfig"
	if e.Kubeconfig != "" {
		where = "kubeconfig " + e.Kubeconfig
	}
	which := "its current context"
	if e.Context != "" {
		which = "context " + e.Context
	}
	return fmt.Sprintf("existing cluster from %s, %s", where, which)
}

// Find is Ensure: an existing cluster needs nothing laid down.
func (e *Existing) Find(ctx context.Context) (*rest.Config, error) { return e.Ensure(ctx) }

// Ensure loads the client configuration; it does not contact the cluster.
func (e *Existing) Ensure(ctx context.Context) (*rest.Config, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if e.Config != nil {
		return tune(e.Config), nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if e.Kubeconfig != "" {
		// clientcmd's own message for a missing explicit file is a bare
		// stat error.
		if _, err := os.Stat(e.Kubeconfig); err != nil {
			return nil, fmt.Errorf("existing cluster: kubeconfig %s: %w", e.Kubeconfig, err)
		}
		rules.ExplicitPath = e.Kubeconfig
	}
	// Only regular files are read: a named pipe would block the load.
	for _, p := range append([]string{rules.ExplicitPath}, rules.Precedence...) {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("existing cluster: kubeconfig %s is not a regular file (%s)", p, fi.Mode().Type())
		}
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: e.Context})
	cfg, err := loader.ClientConfig()
	switch {
	case clientcmd.IsEmptyConfig(err) && e.Kubeconfig != "":
		return nil, fmt.Errorf("existing cluster: kubeconfig %s holds no cluster configuration", e.Kubeconfig)
	case clientcmd.IsEmptyConfig(err):
		return nil, fmt.Errorf("existing cluster: no kubeconfig found (looked at %s): pass --kubeconfig, set KUBECONFIG or create ~/.kube/config", lookedAt(rules))
	case err != nil:
		return nil, fmt.Errorf("existing cluster: kubeconfig: %w", err)
	}
	return tune(cfg), nil
}

// lookedAt lists the kubeconfig files the rules read.
func lookedAt(rules *clientcmd.ClientConfigLoadingRules) string {
	if rules.ExplicitPath != "" {
		return rules.ExplicitPath
	}
	if len(rules.Precedence) == 0 {
		return "no files"
	}
	return fmt.Sprint(rules.Precedence)
}
