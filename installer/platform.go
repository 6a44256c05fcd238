package installer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/installer/settings"
)

// Where Apply keeps the material of file settings; an upgrade or a
// configure that does not name the files again reads it back from there.
const (
	tlsSecretNamespace  = "istio-system"
	pullSecretNamespace = "knative-serving"
	caNamespace         = "knative-serving"
)

// mergePlatform is the settings a run applies: the user's over the
// installed ones. A section the user set replaces the installed one;
// ConfigMap keys and workloads merge one by one.
func mergePlatform(installed, user settings.Settings) settings.Settings {
	out := installed
	if user.Domain != "" {
		out.Domain = user.Domain
	}
	if user.TLS != nil {
		out.TLS = user.TLS
	}
	if user.Registry != nil {
		out.Registry = user.Registry
	}
	if user.HighAvailability != nil {
		out.HighAvailability = user.HighAvailability
	}
	if user.Gateway != nil {
		out.Gateway = user.Gateway
	}
	if len(user.Config) > 0 {
		cfg := map[string]map[string]settings.Value{}
		for name, kv := range installed.Config {
			cfg[name] = maps.Clone(kv)
		}
		for name, kv := range user.Config {
			if cfg[name] == nil {
				cfg[name] = map[string]settings.Value{}
			}
			maps.Copy(cfg[name], kv)
		}
		out.Config = cfg
	}
	if len(user.Workloads) > 0 {
		w := maps.Clone(installed.Workloads)
		if w == nil {
			w = map[string]settings.Workload{}
		}
		maps.Copy(w, user.Workloads)
		out.Workloads = w
	}
	return out
}

// DefaultDomain is the domain functions get on a kind cluster when none
// is set: the listen address's sslip.io name, which resolves to that
// address without any DNS setup of the user's (as kn quickstart does).
func DefaultDomain(listen string) string {
	ip := net.ParseIP(reachableHost(listen))
	if ip.To4() == nil {
		return strings.ReplaceAll(ip.String(), ":", "-") + ".sslip.io"
	}
	return ip.String() + ".sslip.io"
}

// reachableHost is where this host reaches a listen address: loopback
// for an unspecified (or unparsable) one.
func reachableHost(listen string) string {
	if ip := net.ParseIP(listen); ip == nil || ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return listen
}

// renderFromState completes the render inputs with what the state says
// of the installed release (once it is read, before anything renders):
// its settings under the user's, its Istio overlay unless the user gives
// one, and kind's node ports when tmbox laid the cluster down.
func (e *env) renderFromState(ctx context.Context) error {
	if err := e.feedFromState(); err != nil {
		return err
	}
	return e.renderKept(ctx)
}

// renderKept sets the render inputs that keep what the installed release
// runs with, besides its images: its Istio overlay and its settings.
func (e *env) renderKept(ctx context.Context) error {
	if err := e.overlayFromState(ctx); err != nil {
		return err
	}
	return e.platformFromState(ctx)
}

// platformFromState sets the settings the objects are rendered with.
func (e *env) platformFromState(ctx context.Context) error {
	if e.state != nil && e.state.KindCluster != "" {
		e.render.kindNodePorts = true
	}
	p, err := e.platformFor(ctx)
	if err != nil {
		return err
	}
	e.render.platform = p
	return nil
}

// feedFromState decides where the release's images come from: the
// registry given, or else the one the state recorded (said so in an
// event), which needs the bundle the images are pushed from; a bundle into
// an existing cluster needs a registry. It maps the bundle's images to the
// registry, and decides the image overrides (feedOverrides).
func (e *env) feedFromState() error {
	reg := e.opts.Registry
	if reg == "" && e.state != nil && e.state.Registry != "" {
		reg = e.state.Registry
		e.opts.Registry = reg
		e.report(Event{Type: EventInfo, Message: "images from " + reg + ", the registry recorded when release " + e.state.Release + " was installed"})
	}
	if e.kind == nil && e.bundle != nil && reg == "" && e.state != nil && e.state.KindCluster != "" {
		// A later run on the kind cluster tmbox made loads the bundle's
		// images into its nodes, as the install did.
		opts := e.opts
		opts.Kind.Name = e.state.KindCluster
		e.kind = opts.KindProvider(e.release)
	}
	kind := e.kind != nil
	switch {
	case reg != "" && e.bundle == nil:
		return &SettingError{Setting: "bundle", Err: fmt.Errorf("the release runs from the private registry %s: give --bundle FILE holding release %s, whose images tmbox pushes there (without a bundle the cluster would pull from upstream)", reg, e.release.Name)}
	case e.bundle != nil && reg == "" && !kind:
		return &SettingError{Setting: "registry", Err: errors.New("--bundle into an existing cluster needs --registry HOST[/PREFIX]: the cluster's nodes pull the bundle's images from there")}
	case e.bundle != nil && reg != "":
		m, err := registryMapping(e.bundle.Manifest, reg)
		if err != nil {
			return err
		}
		e.render.imageMap = m
	}
	return e.feedOverrides()
}

// platformFor decides the settings of this run once the state is known:
// the user's over the installed ones (unless ResetPlatform), the kind
// default domain, and the material of file settings the user did not name
// again, read back from the objects an earlier run made.
func (e *env) platformFor(ctx context.Context) (*settings.Resolved, error) {
	user := e.userPlatform
	eff := user.Settings
	if !e.opts.ResetPlatform && e.state != nil && e.state.Platform != nil {
		eff = mergePlatform(*e.state.Platform, user.Settings)
	}
	out := &settings.Resolved{Settings: eff, TLSCert: user.TLSCert, TLSKey: user.TLSKey, PullSecret: user.PullSecret, CA: user.CA}
	if e.kind != nil && eff.Domain == "" {
		out.Settings.Domain = DefaultDomain(e.kind.Config.ListenAddress)
	}
	if !e.connected() {
		return out, nil
	}
	if eff.TLS != nil && user.Settings.TLS == nil {
		data, err := e.liveSecret(ctx, tlsSecretNamespace, settings.TLSSecretName, "platform.tls")
		if err != nil {
			return nil, err
		}
		out.TLSCert, out.TLSKey = data["tls.crt"], data["tls.key"]
	}
	if r := eff.Registry; r != nil && (user.Settings.Registry == nil) {
		if r.PullSecret != "" {
			data, err := e.liveSecret(ctx, pullSecretNamespace, settings.PullSecretName, "platform.registry.pullSecret")
			if err != nil {
				return nil, err
			}
			out.PullSecret = data[".dockerconfigjson"]
		}
		if r.CAFile != "" {
			cm, err := e.client.CoreV1().ConfigMaps(caNamespace).Get(ctx, settings.CAConfigMapName, metav1.GetOptions{})
			if err != nil {
				return nil, keptMaterialError("platform.registry.caFile", "ConfigMap", caNamespace, settings.CAConfigMapName, err)
			}
			out.CA = []byte(cm.Data["ca.crt"])
		}
	}
	return out, nil
}

// liveSecret reads a Secret an earlier run made for a kept setting.
func (e *env) liveSecret(ctx context.Context, ns, name, setting string) (map[string][]byte, error) {
	s, err := e.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, keptMaterialError(setting, "Secret", ns, name, err)
	}
	return s.Data, nil
}

// keptMaterialError says that an installed setting's object is gone (or
// unreadable) and how to give the files again.
func keptMaterialError(setting, kind, ns, name string, err error) error {
	if apierrors.IsNotFound(err) {
		flags := map[string]string{"platform.tls": "--tls-cert FILE --tls-key FILE", "platform.registry.pullSecret": "--pull-secret FILE", "platform.registry.caFile": "--registry-ca FILE"}[setting]
		return &settings.Error{Path: setting, Err: fmt.Errorf("installed, but its %s %s/%s is gone: give the file(s) again (`tmbox configure %s`)", kind, ns, name, flags)}
	}
	return fmt.Errorf("%s: read %s %s/%s: %w", setting, kind, ns, name, err)
}

// platformState is what the state records of this run's settings (nil
// when there are none).
func (e *env) platformState() *settings.Settings {
	if e.render.platform == nil || e.render.platform.Settings.IsZero() {
		return nil
	}
	s := e.render.platform.Settings
	return &s
}

// applyPlatform checks that the release can honour the settings and
// applies them to its objects; the objects they add join the component
// that owns their namespace.
func (d *desired) applyPlatform(p *settings.Resolved) error {
	if p == nil || p.Settings.IsZero() {
		return nil
	}
	var all []*apply.Object
	for _, comp := range d.release.ComponentList() {
		all = append(all, d.byComponent[comp.Name]...)
	}
	if err := settings.Check(p.Settings, d.release.Name, all); err != nil {
		return err
	}
	added, err := settings.Apply(p, all)
	if err != nil {
		return fmt.Errorf("release %s: platform settings: %w", d.release.Name, err)
	}
	for _, o := range added {
		k := apply.KeyOf(o.Unstructured)
		if owner, taken := d.keys[k]; taken {
			return fmt.Errorf("release %s: platform settings add %s, which %s already has", d.release.Name, k, owner)
		}
		d.keys[k] = o.Component
		d.byComponent[o.Component] = append(d.byComponent[o.Component], o)
	}
	return nil
}

// urlPattern is where functions are reachable with this run's settings:
// https with a certificate, the kind cluster's host port when it is not
// the scheme's own. "" without a domain.
func (e *env) urlPattern() string {
	p := e.render.platform
	if p == nil || p.Settings.Domain == "" {
		return ""
	}
	scheme, port := "http", 80
	if p.Settings.TLS != nil {
		scheme, port = "https", 443
	}
	host := "{name}.{namespace}." + p.Settings.Domain
	switch {
	case e.state != nil && e.state.KindCluster != "":
		// A later run on a kind cluster keeps the host port it recorded
		// (its kind config, if any, is not the one the cluster was made
		// with).
		if u, err := url.Parse(e.state.URLPattern); err == nil && u.Scheme == scheme && u.Port() != "" {
			host += ":" + u.Port()
		}
	case e.kind != nil:
		hp := e.kind.Config.HTTPPort
		if scheme == "https" {
			hp = e.kind.Config.HTTPSPort
		}
		if hp > 0 && hp != port {
			host += ":" + strconv.Itoa(hp)
		}
	}
	return scheme + "://" + host
}
