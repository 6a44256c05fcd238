package main

import (
	"github.com/spf13/pflag"

	"github.com/tmbox/tmbox/installer/settings"
)

// platformAnnotation marks the flags that set a platform setting: in a
// config file they live under platform: (at the path the annotation
// holds), not at the top level.
const platformAnnotation = "tmbox.dev/platform"

// platformFlags are the platform settings common enough to be flags (and
// TMBOX_* env vars); the rest are config-file only.
type platformFlags struct {
	domain, tlsCert, tlsKey, pullSecret, registryCA, gatewayType string
	tlsRedirect                                                  bool
	haReplicas                                                   int32
	resetPlatform                                                bool
}

// addPlatformFlags registers the platform flags on f.
func addPlatformFlags(f *pflag.FlagSet, p *platformFlags) {
	add := func(name, path string) { _ = f.SetAnnotation(name, platformAnnotation, []string{path}) }
	f.StringVar(&p.domain, "domain", "", "Knative's domain: functions are reachable as NAME.NAMESPACE.DOMAIN (default on kind: LISTEN-ADDRESS.sslip.io)")
	add("domain", "platform.domain")
	f.StringVar(&p.tlsCert, "tls-cert", "", "PEM certificate for the ingress gateway's HTTPS server (with --tls-key)")
	add("tls-cert", "platform.tls.certFile")
	f.StringVar(&p.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	add("tls-key", "platform.tls.keyFile")
	f.BoolVar(&p.tlsRedirect, "tls-redirect-http", false, "redirect the gateway's HTTP to HTTPS (with --tls-cert)")
	add("tls-redirect-http", "platform.tls.redirectHTTP")
	f.StringVar(&p.pullSecret, "pull-secret", "", "Docker config JSON file: an image pull Secret every workload of the release uses")
	add("pull-secret", "platform.registry.pullSecret")
	f.StringVar(&p.registryCA, "registry-ca", "", "PEM CA bundle Knative Serving trusts when it resolves image tags")
	add("registry-ca", "platform.registry.caFile")
	f.Int32Var(&p.haReplicas, "ha-replicas", 0, "replicas of the Knative and Istio control-plane Deployments (high availability)")
	add("ha-replicas", "platform.highAvailability.replicas")
	f.StringVar(&p.gatewayType, "gateway-type", "", "Service type of the ingress gateway: LoadBalancer, NodePort or ClusterIP (default: NodePort on kind, LoadBalancer elsewhere)")
	add("gateway-type", "platform.gateway.type")
}

// addResetFlag registers --reset-settings, for the commands that write
// the settings.
func addResetFlag(f *pflag.FlagSet, p *platformFlags) {
	f.BoolVar(&p.resetPlatform, "reset-settings", false, "drop the installed platform settings and Istio overlay: only the ones given now apply")
}

// isPlatformFlag reports whether f is one of addPlatformFlags'.
func isPlatformFlag(f *pflag.Flag) bool {
	_, ok := f.Annotations[platformAnnotation]
	return ok
}

// settings returns file's settings with the flags the command line or the
// environment set laid over them (flags > env > file).
func (p *platformFlags) settings(fs *pflag.FlagSet, file settings.Settings) settings.Settings {
	s := file
	changed := func(name string) bool { f := fs.Lookup(name); return f != nil && f.Changed }
	if changed("domain") {
		s.Domain = p.domain
	}
	if changed("tls-cert") || changed("tls-key") || changed("tls-redirect-http") {
		t := settings.TLS{}
		if s.TLS != nil {
			t = *s.TLS
		}
		if changed("tls-cert") {
			t.CertFile = p.tlsCert
		}
		if changed("tls-key") {
			t.KeyFile = p.tlsKey
		}
		if changed("tls-redirect-http") {
			t.RedirectHTTP = p.tlsRedirect
		}
		s.TLS = &t
	}
	if changed("pull-secret") || changed("registry-ca") {
		r := settings.Registry{}
		if s.Registry != nil {
			r = *s.Registry
		}
		if changed("pull-secret") {
			r.PullSecret = p.pullSecret
		}
		if changed("registry-ca") {
			r.CAFile = p.registryCA
		}
		s.Registry = &r
	}
	if changed("ha-replicas") {
		s.HighAvailability = &settings.HighAvailability{Replicas: p.haReplicas}
	}
	if changed("gateway-type") {
		g := settings.Gateway{}
		if s.Gateway != nil {
			g = *s.Gateway
		}
		g.Type = p.gatewayType
		s.Gateway = &g
	}
	return s
}
