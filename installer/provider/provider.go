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
	"sort"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
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
	loader, _, err := e.load()
	if err != nil {
		return nil, err
	}
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("existing cluster: kubeconfig: %w", err)
	}
	return tune(cfg), nil
}

// Endpoint names the kubeconfig context and the API server Ensure would
// use, for prompts ("" context: in-cluster, or a given Config). It reads
// the kubeconfig only; the cluster is not contacted.
func (e *Existing) Endpoint() (contextName, server string, err error) {
	if e.Config != nil {
		return "", e.Config.Host, nil
	}
	loader, raw, err := e.load()
	if err != nil {
		return "", "", err
	}
	cfg, err := loader.ClientConfig()
	if err != nil {
		return "", "", fmt.Errorf("existing cluster: kubeconfig: %w", err)
	}
	if raw == nil {
		return "", cfg.Host, nil // in-cluster
	}
	contextName = e.Context
	if contextName == "" {
		contextName = raw.CurrentContext
	}
	return contextName, cfg.Host, nil
}

// load reads the kubeconfig as kubectl would and checks it names a
// cluster, in plain words when it does not: no file at all (naming where
// it looked), a file without a current context, a --context it lacks. raw
// is nil for the in-cluster configuration.
func (e *Existing) load() (clientcmd.ClientConfig, *clientcmdapi.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if e.Kubeconfig != "" {
		// clientcmd's own message for a missing explicit file is a bare
		// stat error.
		if _, err := os.Stat(e.Kubeconfig); err != nil {
			return nil, nil, fmt.Errorf("existing cluster: kubeconfig %s: %w", e.Kubeconfig, err)
		}
		rules.ExplicitPath = e.Kubeconfig
	}
	// Only regular files are read: a named pipe would block the load.
	for _, p := range append([]string{rules.ExplicitPath}, rules.Precedence...) {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && !fi.Mode().IsRegular() {
			return nil, nil, fmt.Errorf("existing cluster: kubeconfig %s is not a regular file (%s)", p, fi.Mode().Type())
		}
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: e.Context})
	raw, err := loader.RawConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("existing cluster: kubeconfig: %w", err)
	}
	names := make([]string, 0, len(raw.Contexts))
	for n := range raw.Contexts {
		names = append(names, n)
	}
	sort.Strings(names)
	switch {
	case e.Context != "" && raw.Contexts[e.Context] == nil && len(names) == 0:
		return nil, nil, fmt.Errorf("existing cluster: --context %s: no kubeconfig found (looked in %s): pass --kubeconfig FILE", e.Context, LookedIn(e.Kubeconfig))
	case e.Context != "" && raw.Contexts[e.Context] == nil:
		return nil, nil, fmt.Errorf("existing cluster: --context %s: the kubeconfig (%s) has no such context; it has %s", e.Context, lookedAt(rules), strings.Join(names, ", "))
	case e.Context == "" && raw.CurrentContext == "" && len(names) > 0:
		return nil, nil, fmt.Errorf("existing cluster: the kubeconfig (%s) sets no current context: pass --context NAME (one of %s) or run kubectl config use-context NAME", lookedAt(rules), strings.Join(names, ", "))
	case len(names) == 0 && e.Kubeconfig != "":
		return nil, nil, fmt.Errorf("existing cluster: kubeconfig %s holds no cluster configuration", e.Kubeconfig)
	case len(names) == 0 && !inCluster():
		return nil, nil, &NoKubeconfigError{LookedIn: LookedIn("")}
	case len(names) == 0:
		return loader, nil, nil
	}
	return loader, &raw, nil
}

// NoKubeconfigError is the error of an existing cluster when no
// kubeconfig names one and tmbox does not run in a pod.
type NoKubeconfigError struct {
	// LookedIn says where tmbox looked (LookedIn).
	LookedIn string
}

// Error says where a kubeconfig was looked for.
func (e *NoKubeconfigError) Error() string {
	return "no kubeconfig found (looked in " + e.LookedIn + "): pass --kubeconfig FILE (and --context NAME) for an existing cluster, or --create-cluster to install into a kind cluster on this host"
}

// LookedIn says, in words, where a kubeconfig is looked for: the explicit
// file, else $KUBECONFIG's files or ~/.kube/config, and the in-cluster
// service account.
func LookedIn(explicit string) string {
	if explicit != "" {
		return explicit
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	where := "~/.kube/config (" + strings.Join(rules.Precedence, ", ") + ")"
	if env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar); env != "" {
		where = "$KUBECONFIG (" + strings.Join(rules.Precedence, ", ") + ")"
	}
	if inCluster() {
		return where + " and the in-cluster service account"
	}
	return where + " and the in-cluster service account (KUBERNETES_SERVICE_HOST is not set)"
}

// inCluster reports whether tmbox runs in a pod (client-go's in-cluster
// configuration would be used).
func inCluster() bool {
	return os.Getenv("KUBERNETES_SERVICE_HOST") != "" && os.Getenv("KUBERNETES_SERVICE_PORT") != ""
}

// lookedAt lists the kubeconfig files the rules read.
func lookedAt(rules *clientcmd.ClientConfigLoadingRules) string {
	if rules.ExplicitPath != "" {
		return rules.ExplicitPath
	}
	if len(rules.Precedence) == 0 {
		return "no files"
	}
	return strings.Join(rules.Precedence, ", ")
}
