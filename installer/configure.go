package installer

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/client-go/rest"

	"github.com/tmbox/tmbox/catalog"
)

// Configure changes the platform settings of the installed release in
// place: the release and its components stay, and only the objects the
// settings change are written (no post-install Jobs run again).
type Configure struct {
	Options
	// Config, when set, is the cluster (instead of Kubeconfig/Context).
	Config *rest.Config
}

// Run converges the installed release to the settings (DryRun: plans).
func (c *Configure) Run(ctx context.Context) (*Result, error) {
	in, err := c.install(ctx)
	if err != nil {
		return nil, err
	}
	return in.Run(ctx)
}

// Plan says what Run would write, as data.
func (c *Configure) Plan(ctx context.Context) (*InstallPlan, error) {
	in, err := c.install(ctx)
	if err != nil {
		return nil, err
	}
	return in.Plan(ctx)
}

// install is the install of the installed release and components with
// the new settings.
func (c *Configure) install(ctx context.Context) (*Install, error) {
	if c.Release != "" {
		return nil, &SettingError{Setting: "release", Err: fmt.Errorf("configure keeps the installed release: use `tmbox upgrade --to %s` to change it", c.Release)}
	}
	r, err := resolveTarget(c.Options, target{config: c.Config})
	if err != nil {
		return nil, err
	}
	cfg, err := r.provider.Find(ctx)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, errors.New("no cluster: tmbox configure changes an installed release (tmbox install first)")
	}
	e := newEnv(r)
	if err := e.connect(cfg); err != nil {
		return nil, err
	}
	if err := e.loadState(ctx); err != nil {
		return nil, err
	}
	if e.state.Release == "" {
		return nil, errors.New("no tmbox release is installed on this cluster: use `tmbox install`")
	}
	opts := c.Options
	opts.Release = e.state.Release
	opts.Components = nil
	for _, name := range catalog.ComponentNames() {
		if _, ok := e.state.Components[name]; ok {
			opts.Components = append(opts.Components, name)
		}
	}
	return &Install{Options: opts, Config: e.cfg, settingsOnly: true}, nil
}
