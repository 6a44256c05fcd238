package installer

import (
	"context"
	"fmt"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/provider"
	"github.com/tmbox/tmbox/preflight"
)

// CreateCluster lays down the kind cluster the options describe (or finds
// the one of that name) after the host checks pass.
type CreateCluster struct {
	Options
	// Host is what host checks read (default: this machine).
	Host *preflight.Host
	// Provider replaces kind (tests).
	Provider provider.Provider
}

// Run creates the cluster and returns where its kubeconfig is.
func (c *CreateCluster) Run(ctx context.Context) (string, error) {
	opts := &c.Options
	opts.CreateCluster = true
	if err := opts.Validate(); err != nil {
		return "", err
	}
	rel, err := opts.release()
	if err != nil {
		return "", err
	}
	pf := &preflightRun{opts: opts, release: rel, host: c.Host}
	if _, err := pf.phase(ctx, pf.checks()); err != nil {
		return "", err
	}
	kind := opts.KindProvider(rel)
	prov := c.Provider
	if prov == nil {
		prov = kind
	}
	opts.Reporter.Report(Event{Type: EventPhaseStart, Phase: PhaseCluster, Message: "laying down " + prov.Describe()})
	if _, err := prov.Ensure(ctx); err != nil {
		opts.Reporter.Report(Event{Type: EventPhaseFail, Phase: PhaseCluster, Error: err.Error()})
		return "", fmt.Errorf("phase %s: %w", PhaseCluster, err)
	}
	opts.Reporter.Report(Event{Type: EventPhaseDone, Phase: PhaseCluster, Message: prov.Describe()})
	return kind.KubeconfigPath(), nil
}

// DeleteCluster deletes the kind cluster the options name, and the files
// tmbox keeps for it.
func DeleteCluster(ctx context.Context, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	return opts.KindProvider(nil).Delete(ctx)
}

// ClusterKubeconfig returns the kubeconfig of the kind cluster the options
// name.
func ClusterKubeconfig(ctx context.Context, opts Options) ([]byte, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return opts.KindProvider(nil).Kubeconfig(ctx)
}

// release loads the catalog and returns the selected release (default:
// the latest).
func (o *Options) release() (*catalog.Release, error) {
	cat, err := catalog.Load(o.CatalogFile)
	if err != nil {
		return nil, err
	}
	if o.Release == "" {
		o.Release = cat.Latest().Name
	}
	return cat.Release(o.Release)
}
