package installer

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/installer/addons"
	"github.com/tmbox/tmbox/installer/apply"
)

// PhaseAddons installs or upgrades the operator's own Helm charts.
const PhaseAddons = "addons"

// addonsPhase ensures every declared add-on with Helm's own actions and
// release storage, after the stack and before verify; an unchanged add-on
// makes no new Helm revision. In a run from a bundle through a private
// registry, the images of the add-ons loaded from the bundle are pushed
// there first (those already there are not uploaded again), and every
// add-on's images are rewritten to the registry (Manager.Images).
func addonsPhase() phase {
	return phase{
		name: PhaseAddons, title: "add-ons", writes: true,
		skip: func(e *env) string {
			if len(e.addons) == 0 {
				if e.bundle != nil && len(e.bundle.Manifest.Addons) > 0 {
					return fmt.Sprintf("no add-ons declared (the bundle carries %s: declare them under addons: in --config to install them)", strings.Join(e.bundle.Manifest.AddonNames(), ", "))
				}
				return "no add-ons declared"
			}
			return ""
		},
		plan: func(_ context.Context, e *env) (PhasePlan, error) {
			var names []string
			for _, l := range e.addons {
				from := ""
				if l.FromBundle {
					from = ", from the bundle"
				}
				names = append(names, fmt.Sprintf("%s (%s %s in %s%s)", l.Addon.Name, l.Chart.Metadata.Name, l.Chart.Metadata.Version, l.Addon.Namespace, from))
			}
			summary := "install or upgrade " + strings.Join(names, ", ") + " with Helm (unchanged ones stay at their revision)"
			if len(e.render.imageMap) > 0 {
				summary += "; images from " + e.opts.Registry
			}
			return PhasePlan{Summary: summary}, nil
		},
		run: func(ctx context.Context, e *env) (string, error) {
			if msg, err := e.bringAddonImages(ctx); err != nil {
				return "", err
			} else if msg != "" {
				e.report(Event{Type: EventInfo, Phase: PhaseAddons, Message: msg})
			}
			m := e.addonManager()
			var done []string
			for _, l := range e.addons {
				out, err := m.Ensure(ctx, l)
				if err != nil {
					return "", fmt.Errorf("add-on %s: %w", l.Addon.Name, err)
				}
				msg := fmt.Sprintf("%s %s (revision %d)", out.Name, out.Action, out.Revision)
				if out.Message != "" {
					e.report(Event{Type: EventInfo, Phase: PhaseAddons, Message: out.Name + ": " + out.Message})
				}
				done = append(done, msg)
			}
			return strings.Join(done, ", "), nil
		},
	}
}

// addonManager is the Helm manager of this run, waiting with tmbox's
// waiter so an add-on that is not ready says why, and rewriting the
// add-ons' images with the run's private registry mapping.
func (e *env) addonManager() *addons.Manager {
	return &addons.Manager{
		Config: e.cfg,
		Log:    e.opts.Logger,
		Images: e.render.imageMap,
		Wait: func(ctx context.Context, objs []*unstructured.Unstructured, budget time.Duration) error {
			wrapped := make([]*apply.Object, 0, len(objs))
			for _, u := range objs {
				wrapped = append(wrapped, &apply.Object{Unstructured: u, Component: "addon"})
			}
			notify := func(object, reason string) {
				e.report(Event{Type: EventWaiting, Phase: PhaseAddons, Message: object + ": " + reason})
			}
			return e.waiter.WaitReady(ctx, wrapped, "", budget, notify)
		},
	}
}

// bringAddonImages brings the images of the add-ons loaded from the
// bundle to where the cluster runs them: pushed to the private registry
// (digests kept; blobs and manifests the registry holds are not uploaded
// again), or, on the kind cluster tmbox made without a registry, imported
// into every node under their own references. An upgrade's hops bring
// only each release's images, so this is where an add-on image new in
// the bundle arrives; an install's images phase imported the whole bundle
// into the nodes already. Nothing to do without a bundle or an add-on
// from it.
func (e *env) bringAddonImages(ctx context.Context) (string, error) {
	if e.bundle == nil || (e.opts.Registry == "" && (e.kind == nil || e.bundleInNodes)) {
		return "", nil
	}
	var names []string
	for _, l := range e.addons {
		if l.FromBundle {
			names = append(names, l.Addon.Name)
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	imgs, err := e.bundle.Manifest.AddonImages(names...)
	if err != nil || len(imgs) == 0 {
		return "", err
	}
	if e.opts.Registry == "" {
		if err := e.kind.LoadImages(ctx, func(w io.Writer) error { return writeOCIArchive(w, e.bundle.LayoutDir, imgs) }); err != nil {
			return "", fmt.Errorf("add-on images: %w", err)
		}
		return fmt.Sprintf("the %d images of add-ons %s: imported into the nodes of kind cluster %s", len(imgs), strings.Join(names, ", "), e.kind.Config.Name), nil
	}
	if _, err := bundle.PushImages(ctx, e.bundle, e.opts.Registry, imgs, remote.WithUserAgent("tmbox"), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return "", fmt.Errorf("add-on images: %w", err)
	}
	return fmt.Sprintf("the %d images of add-ons %s are in %s (digests kept)", len(imgs), strings.Join(names, ", "), e.opts.Registry), nil
}

// loadAddons loads the declared add-ons (addons.Load): in a run from a
// bundle, those the bundle carries from it (by name; their chart paths
// are not read, nothing is pulled), the others from their charts. A
// preflight that leaves the bundle unopened only validates them (Options'
// Validate did).
func (r *resolved) loadAddons(ctx context.Context, skipBundle bool) error {
	o := &r.opts
	if o.Bundle != "" && skipBundle {
		return nil
	}
	opts := addons.LoadOptions{AirGapped: o.Bundle != "" || o.Mirror != ""}
	if b := r.bundle; b != nil && len(b.Manifest.Addons) > 0 {
		held := make([]string, 0, len(b.Manifest.Images))
		for _, img := range b.Manifest.Images {
			held = append(held, img.Ref)
		}
		opts.Bundled = map[string]addons.BundledChart{}
		for _, a := range b.Manifest.Addons {
			p, _, err := b.AddonArchive(a.Name)
			if err != nil {
				return err
			}
			opts.Bundled[a.Name] = addons.BundledChart{Archive: p, SHA256: a.SHA256, Chart: a.Chart, Version: a.Version, ChartDigest: a.ChartDigest, Images: slices.Clone(held)}
		}
	}
	var err error
	r.addons, err = addons.Load(ctx, o.Addons, opts)
	return err
}

// BundleAddons loads the add-ons for an air-gap bundle (tmbox bundle
// create --config): each add-on as an air-gapped run loads it (so an
// oci:// chart must be pinned by its digest; values are checked against
// the chart's schema), with its chart archive (addons.Archive: a chart
// directory packaged with Helm) and the images its templates reference
// with its values (addons.Images). It writes nothing; an error names the
// add-on's setting (*addons.Error).
func BundleAddons(ctx context.Context, list []addons.Addon) ([]bundle.AddonSource, error) {
	loaded, err := addons.Load(ctx, list, addons.LoadOptions{AirGapped: true})
	if err != nil {
		return nil, err
	}
	out := make([]bundle.AddonSource, 0, len(loaded))
	for _, l := range loaded {
		archive, err := addons.Archive(l)
		if err != nil {
			return nil, err
		}
		images, err := addons.Images(l, "")
		if err != nil {
			return nil, err
		}
		md := l.Chart.Metadata
		out = append(out, bundle.AddonSource{
			Name: l.Addon.Name, Chart: md.Name, Version: md.Version, AppVersion: md.AppVersion,
			ChartDigest: l.ChartDigest, Archive: archive, Images: images,
		})
	}
	return out, nil
}

// AddonStatus is one add-on as Helm's storage records it.
type AddonStatus = addons.Status
