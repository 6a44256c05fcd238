package installer

import (
	"context"

	"k8s.io/client-go/rest"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/addons"
	"github.com/tmbox/tmbox/installer/provider"
	"github.com/tmbox/tmbox/installer/settings"
	"github.com/tmbox/tmbox/preflight"
)

// resolved is what one run works with, decided once from the user's
// Options before anything is written: the options with defaults, the
// catalog and release, where assets come from, how objects are rendered
// and which cluster is the target. Nothing downstream changes the user's
// Options; bundles, upgrades and the wizard read this instead.
type resolved struct {
	// opts are the user's options with defaults filled (a copy).
	opts Options
	// catalog and release are the selected catalog and release (for an
	// upgrade: the target).
	catalog *catalog.Catalog
	release *catalog.Release
	// source delivers the release's assets, verified.
	source catalog.Source
	// bundle is the verified, extracted bundle of an air-gapped run.
	bundle *bundle.Extracted
	// render says how objects are rendered.
	render renderInputs
	// userPlatform are the user's platform settings with their files read
	// (render.platform adds the installed ones once the state is known).
	userPlatform *settings.Resolved
	// addons are the declared add-ons, their charts loaded and values
	// checked against the charts' schemas.
	addons []*addons.Loaded
	// provider is the target; kind is set when it is a kind cluster tmbox
	// lays down.
	provider provider.Provider
	kind     *provider.Kind
	// host is what host preflight checks read.
	host *preflight.Host
	// cleanup removes the bundle's work directory.
	cleanup func()
}

// renderInputs are the inputs of rendering besides the release: they
// shape the objects, so the apply hash covers them.
type renderInputs struct {
	// istioOverlay is the IstioOperator overlay (compiled-in Istio only;
	// nil: none): the user's file, or the one an earlier run kept.
	istioOverlay *istioOverlay
	// triggerMeshRegistry replaces gcr.io/triggermesh: a shorthand for
	// the image overrides triggerMeshOverrides makes of each release.
	triggerMeshRegistry string
	// keptOverrides are the image overrides recorded in the state and
	// the bundle; overrides are the user's (Options.Images). forRelease
	// folds the ones a release has into imageMap (see overridesFor).
	keptOverrides, overrides map[string]string
	// imageMap maps the release's image references to the ones installed
	// (a private registry).
	imageMap map[string]string
	// kindNodePorts pins the ingress gateway to the node ports kind maps.
	kindNodePorts bool
	// platform are the settings applied to the objects (nil: none).
	platform *settings.Resolved
}

// forRelease drops the Istio overlay for a release whose Istio is not
// compiled in (it cannot apply there; the upgrade refuses it where it
// matters), and folds the image overrides the release has into the image
// map (withOverrides), --triggermesh-registry's among them.
func (ri renderInputs) forRelease(rel *catalog.Release) renderInputs {
	if istio, _ := rel.Component(catalog.Istio); istio != nil && istio.Source != catalog.SourceCompiledIn {
		ri.istioOverlay = nil
	}
	ri.imageMap = ri.withOverrides(rel)
	ri.triggerMeshRegistry = "" // now in the image map
	return ri
}

// target says how resolve finds the cluster.
type target struct {
	// config, when set, is the cluster (tests, embedders).
	config *rest.Config
	// provider, when set, replaces the one the options select.
	provider provider.Provider
	host     *preflight.Host
	// skipBundle leaves a bundle unopened: preflight needs only to know
	// the run is air-gapped, not the bundle's bytes.
	skipBundle bool
}

// resolve validates the options and turns them into a run's inputs. It
// verifies a bundle before anything reads it, loads the catalog and the
// release, and picks the source and the target; it contacts no cluster.
func resolve(ctx context.Context, user Options, t target) (_ *resolved, rerr error) {
	if err := user.Validate(); err != nil {
		return nil, err
	}
	r := &resolved{opts: user.withDefaults(), host: t.host, cleanup: func() {}}
	defer func() {
		if rerr != nil {
			r.cleanup()
		}
	}()
	o := &r.opts
	catalogFile := o.CatalogFile
	src, err := o.source()
	if err != nil {
		return nil, err
	}
	if o.Bundle != "" && !t.skipBundle {
		b, cleanup, err := o.openBundle(ctx)
		if err != nil {
			return nil, err
		}
		r.bundle, r.cleanup = b, cleanup
		catalogFile, src = b.CatalogFile, catalog.Mirror{Dir: b.AssetsDir}
	}
	r.source = src
	if r.catalog, err = catalog.Load(catalogFile); err != nil {
		if r.bundle == nil {
			return nil, &SettingError{Setting: "catalog", Err: err} // the user's --catalog
		}
		return nil, err
	}
	if o.Release == "" {
		o.Release = r.catalog.Latest().Name
		if r.bundle != nil {
			o.Release = r.bundle.Manifest.Release
		}
	}
	if r.release, err = r.catalog.Release(o.Release); err != nil {
		if r.bundle != nil {
			return nil, &SettingError{Setting: "release", Err: &missingFromBundleError{Bundle: o.Bundle, Holds: r.catalog.ReleaseNames(), Release: o.Release}}
		}
		return nil, &SettingError{Setting: "release", Err: err}
	}
	if r.userPlatform, err = settings.Load(o.Platform); err != nil {
		return nil, err
	}
	if err := r.loadAddons(ctx, t.skipBundle); err != nil {
		return nil, err
	}
	r.render.platform = r.userPlatform
	if r.render.istioOverlay, err = readOverlay(o.IstioOverlay); err != nil {
		return nil, err
	}
	r.render.triggerMeshRegistry = o.TriggerMeshRegistry
	r.render.overrides = o.Images
	r.render.kindNodePorts = o.CreateCluster
	switch {
	case t.provider != nil:
		r.provider = t.provider
	case t.config != nil:
		r.provider = &provider.Existing{Config: t.config}
	case o.CreateCluster:
		r.kind = o.KindProvider(r.release)
		r.kind.Config = withRegistryCA(r.kind.Config, r.userPlatform.CA)
		if r.bundle != nil {
			b := r.bundle
			r.kind.LoadNodeImage = func(ctx context.Context) (string, error) {
				return r.kind.LoadNodeImageFrom(ctx, b.LayoutDir, b.Manifest.KindNodeImage, storedDigest(b.Manifest, b.Manifest.KindNodeImage))
			}
		}
		r.provider = r.kind
	default:
		r.provider = &provider.Existing{Kubeconfig: o.Kubeconfig, Context: o.Context}
	}
	return r, nil
}

// storedDigest is the digest the bundle stores an image under ("" when it
// holds none).
func storedDigest(m *bundle.Manifest, ref string) string {
	for _, img := range m.Images {
		if img.Ref == ref {
			return img.Digest
		}
	}
	return ""
}

// resolveTarget is resolve for commands that need only the cluster
// (status, uninstall): no catalog, no release, no bundle.
func resolveTarget(user Options, t target) (*resolved, error) {
	if err := user.Validate(); err != nil {
		return nil, err
	}
	r := &resolved{opts: user.withDefaults(), host: t.host, cleanup: func() {}}
	switch {
	case t.provider != nil:
		r.provider = t.provider
	case t.config != nil:
		r.provider = &provider.Existing{Config: t.config}
	default:
		r.provider = &provider.Existing{Kubeconfig: user.Kubeconfig, Context: user.Context}
	}
	return r, nil
}
