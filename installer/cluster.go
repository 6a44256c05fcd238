package installer

import (
	"context"

	"github.com/tmbox/tmbox/installer/provider"
	"github.com/tmbox/tmbox/preflight"
)

// CreateCluster lays down the kind cluster the options describe (or finds
// the one of that name) after the host checks pass: an install's
// preflight and cluster phases, run by the same runner.
type CreateCluster struct {
	Options
	// Host is what host checks read (default: this machine).
	Host *preflight.Host
	// Provider replaces kind (tests).
	Provider provider.Provider
}

// Run creates the cluster and returns where its kubeconfig is.
func (c *CreateCluster) Run(ctx context.Context) (string, error) {
	opts := c.Options
	opts.CreateCluster = true
	r, err := resolve(ctx, opts, target{provider: c.Provider, host: c.Host})
	if err != nil {
		return "", err
	}
	defer r.cleanup()
	if r.kind == nil {
		r.kind = opts.KindProvider(r.release)
	}
	e := newEnv(r)
	if err := (&runner{e: e}).run(ctx, []phase{preflightPhase(), clusterPhase(nil)}); err != nil {
		return "", err
	}
	return r.kind.KubeconfigPath(), nil
}

// DeleteCluster deletes the kind cluster the options name, and the files
// tmbox keeps for it.
func DeleteCluster(ctx context.Context, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	return opts.withDefaults().KindProvider(nil).Delete(ctx)
}

// ClusterKubeconfig returns the kubeconfig of the kind cluster the options
// name.
func ClusterKubeconfig(ctx context.Context, opts Options) ([]byte, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return opts.withDefaults().KindProvider(nil).Kubeconfig(ctx)
}
