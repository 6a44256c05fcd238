package addons

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/kube"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// restGetter gives Helm (its kube client, kubectl's factory) the clients
// of one *rest.Config, for one namespace: the genericclioptions
// RESTClientGetter Helm's action.Configuration.Init wants, without a
// kubeconfig file. Discovery is cached in memory for the getter's life
// (one action call).
type restGetter struct {
	cfg       *rest.Config
	namespace string

	once   sync.Once
	dc     discovery.CachedDiscoveryInterface
	mapper meta.RESTMapper
	err    error
}

// newGetter returns a getter for cfg in namespace, sending the
// apiserver's warnings to log.
func newGetter(cfg *rest.Config, namespace string, log *slog.Logger) *restGetter {
	c := rest.CopyConfig(cfg)
	c.WarningHandler = warningLogger{log}
	return &restGetter{cfg: c, namespace: namespace}
}

// ToRESTConfig returns a copy of the config.
func (g *restGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.cfg), nil }

// ToDiscoveryClient returns the getter's cached discovery client.
func (g *restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	g.init()
	return g.dc, g.err
}

// ToRESTMapper returns the getter's (resettable) REST mapper.
func (g *restGetter) ToRESTMapper() (meta.RESTMapper, error) {
	g.init()
	return g.mapper, g.err
}

// ToRawKubeConfigLoader returns a client config whose namespace is the
// getter's.
func (g *restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig { return clientConfig{g} }

// init builds the discovery client and mapper once. Discovery gets the
// higher rate limits kubectl uses for it.
func (g *restGetter) init() {
	g.once.Do(func() {
		c := rest.CopyConfig(g.cfg)
		c.QPS, c.Burst = 50, 300
		dc, err := discovery.NewDiscoveryClientForConfig(c)
		if err != nil {
			g.err = err
			return
		}
		g.dc = memory.NewMemCacheClient(dc)
		g.mapper = restmapper.NewDeferredDiscoveryRESTMapper(g.dc)
	})
}

// clientConfig is the clientcmd.ClientConfig of a restGetter.
type clientConfig struct{ g *restGetter }

// RawConfig returns an empty kubeconfig: there is no file.
func (c clientConfig) RawConfig() (clientcmdapi.Config, error) { return clientcmdapi.Config{}, nil }

// ClientConfig returns the getter's config.
func (c clientConfig) ClientConfig() (*rest.Config, error) { return c.g.ToRESTConfig() }

// Namespace returns the getter's namespace, as if set by a flag.
func (c clientConfig) Namespace() (string, bool, error) { return c.g.namespace, true, nil }

// ConfigAccess returns nil: there is no kubeconfig file to persist to.
func (c clientConfig) ConfigAccess() clientcmd.ConfigAccess { return nil }

// warningLogger sends the apiserver's warnings to the debug log.
type warningLogger struct{ log *slog.Logger }

// HandleWarningHeader logs one warning.
func (w warningLogger) HandleWarningHeader(code int, agent, text string) {
	w.log.Debug("apiserver warning", "code", code, "text", text)
}

// waitingClient is Helm's kube client with tmbox's waiter in place of
// Helm's: when an action waits (Install, Upgrade, Rollback with Wait),
// the release stays pending while tmbox's waiter watches its objects,
// and a wait that fails fails the action with the waiter's reasons.
type waitingClient struct {
	*kube.Client
	// ctx is the context of the one call the client serves (Helm's
	// Wait takes none).
	ctx  context.Context
	wait func(ctx context.Context, objs []*unstructured.Unstructured, budget time.Duration) error
	// rewrite is the image mapping of the add-on the call serves (none
	// for most calls): see Create.
	rewrite imageRewrite
}

// Wait waits with tmbox's waiter (nothing to do without one).
func (c *waitingClient) Wait(resources kube.ResourceList, timeout time.Duration) error {
	if c.wait == nil {
		return nil
	}
	return c.wait(c.ctx, unstructuredOf(resources), timeout)
}

// WaitWithJobs waits with tmbox's waiter, as Wait.
func (c *waitingClient) WaitWithJobs(resources kube.ResourceList, timeout time.Duration) error {
	return c.Wait(resources, timeout)
}

// unstructuredOf returns the objects of resources Helm built (from a
// release manifest, with namespaces defaulted to the release's).
func unstructuredOf(resources kube.ResourceList) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, 0, len(resources))
	for _, info := range resources {
		var u *unstructured.Unstructured
		switch o := info.Object.(type) {
		case *unstructured.Unstructured:
			u = o.DeepCopy()
		case nil:
			continue
		default:
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
			if err != nil {
				continue
			}
			u = &unstructured.Unstructured{Object: m}
		}
		if u.GetNamespace() == "" && info.Namespaced() {
			u.SetNamespace(info.Namespace)
		}
		out = append(out, u)
	}
	return out
}
