package installer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/installer/settings"
	"github.com/tmbox/tmbox/internal/testcluster"
	"github.com/tmbox/tmbox/preflight"
)

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir, name, host string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fullPlatform sets every kind of setting, with files in dir.
func fullPlatform(t *testing.T, dir string) settings.Settings {
	t.Helper()
	cert, key := writeCert(t, dir, "gateway", "*.apps.example.com")
	ca, _ := writeCert(t, dir, "registry-ca", "registry.internal")
	pull := filepath.Join(dir, "config.json")
	writeFile(t, pull, []byte(`{"auths":{"registry.internal:5000":{"auth":"dXNlcjpwYXNz"}}}`))
	two := int32(2)
	return settings.Settings{
		Domain:           "apps.example.com",
		TLS:              &settings.TLS{CertFile: cert, KeyFile: key, RedirectHTTP: true},
		Registry:         &settings.Registry{PullSecret: pull, CAFile: ca, SkipTagResolving: []string{"registry.internal:5000"}},
		HighAvailability: &settings.HighAvailability{Replicas: 2},
		Config: map[string]map[string]settings.Value{
			"config-autoscaler":                {"enable-scale-to-zero": "false", "stable-window": "90s"},
			"knative-eventing/config-features": {"new-trigger-filters": "enabled"},
		},
		Workloads: map[string]settings.Workload{
			"knative-serving/activator": {
				Containers:   map[string]settings.Container{"activator": {Resources: map[string]map[string]string{"requests": {"cpu": "350m", "memory": "80Mi"}}, Env: map[string]string{"TMBOX_TEST": "on"}}},
				NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
				Tolerations:  []map[string]any{{"key": "example.com/dedicated", "operator": "Exists", "effect": "NoSchedule"}},
				Annotations:  map[string]string{"example.com/owner": "platform"},
			},
			"knative-eventing/eventing-webhook": {Replicas: &two},
		},
		Gateway: &settings.Gateway{Type: "NodePort", Annotations: map[string]string{"example.com/lb": "internal"}},
	}
}

var (
	gatewayGVR  = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1beta1", Resource: "gateways"}
	haWorkloads = []string{"knative-serving/activator", "knative-serving/autoscaler", "knative-serving/controller", "knative-serving/webhook",
		"knative-eventing/eventing-controller", "istio-system/istiod"}
)

// checkPlatform asserts that every setting of fullPlatform holds on the
// cluster's objects of release.
func checkPlatform(t *testing.T, cfg *rest.Config, release string, s settings.Settings) {
	t.Helper()
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)

	// Domain, and _example exactly as shipped.
	upstream := upstreamConfigMaps(t, release)
	dom, err := cs.CoreV1().ConfigMaps("knative-serving").Get(ctx, "config-domain", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := dom.Data[s.Domain]; !ok || v != "" {
		t.Errorf("config-domain data %v, want %q: \"\"", keys(dom.Data), s.Domain)
	}
	for _, name := range []string{"knative-serving/config-domain", "knative-serving/config-autoscaler", "knative-eventing/config-features", "knative-serving/config-deployment"} {
		ns, n, _ := strings.Cut(name, "/")
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data["_example"] != upstream[name] {
			t.Errorf("%s: _example differs from upstream %s", name, release)
		}
	}
	as, _ := cs.CoreV1().ConfigMaps("knative-serving").Get(ctx, "config-autoscaler", metav1.GetOptions{})
	if as.Data["enable-scale-to-zero"] != "false" || as.Data["stable-window"] != "90s" {
		t.Errorf("config-autoscaler data %v", as.Data)
	}
	feat, _ := cs.CoreV1().ConfigMaps("knative-eventing").Get(ctx, "config-features", metav1.GetOptions{})
	if feat.Data["new-trigger-filters"] != "enabled" {
		t.Errorf("eventing config-features new-trigger-filters = %q", feat.Data["new-trigger-filters"])
	}
	dep, _ := cs.CoreV1().ConfigMaps("knative-serving").Get(ctx, "config-deployment", metav1.GetOptions{})
	if !strings.Contains(dep.Data["registries-skipping-tag-resolving"], "registry.internal:5000") {
		t.Errorf("registries-skipping-tag-resolving = %q", dep.Data["registries-skipping-tag-resolving"])
	}

	// TLS: the Secret and an HTTPS server using it; HTTP redirects.
	sec, err := cs.CoreV1().Secrets("istio-system").Get(ctx, settings.TLSSecretName, metav1.GetOptions{})
	if err != nil || sec.Type != corev1.SecretTypeTLS || len(sec.Data["tls.crt"]) == 0 {
		t.Errorf("TLS Secret: %v %v", err, sec.Type)
	}
	gw, err := dyn.Resource(gatewayGVR).Namespace("knative-serving").Get(ctx, "knative-ingress-gateway", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	servers, _, _ := unstructured.NestedSlice(gw.Object, "spec", "servers")
	https, redirect := false, false
	for _, sv := range servers {
		m := sv.(map[string]any)
		cred, _, _ := unstructured.NestedString(m, "tls", "credentialName")
		mode, _, _ := unstructured.NestedString(m, "tls", "mode")
		if cred == settings.TLSSecretName && mode == "SIMPLE" {
			https = true
		}
		if r, _, _ := unstructured.NestedBool(m, "tls", "httpsRedirect"); r {
			redirect = true
		}
	}
	if !https || !redirect {
		t.Errorf("gateway servers %v: want an HTTPS server with %s and an HTTP redirect", servers, settings.TLSSecretName)
	}

	// Pull secret: in every tmbox namespace; every pod template refers to
	// it (all workloads, not a sample).
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: apply.LabelManagedBy + "=" + apply.ManagedByValue})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss.Items {
		if ns.Name == StateNamespace {
			continue
		}
		if _, err := cs.CoreV1().Secrets(ns.Name).Get(ctx, settings.PullSecretName, metav1.GetOptions{}); err != nil {
			t.Errorf("namespace %s: pull secret: %v", ns.Name, err)
		}
	}
	templates := 0
	for _, gvr := range []schema.GroupVersionResource{{Group: "apps", Version: "v1", Resource: "deployments"}, {Group: "apps", Version: "v1", Resource: "statefulsets"}, {Group: "apps", Version: "v1", Resource: "daemonsets"}, {Group: "batch", Version: "v1", Resource: "jobs"}} {
		list, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: apply.LabelManagedBy + "=" + apply.ManagedByValue})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range list.Items {
			templates++
			secrets, _, _ := unstructured.NestedSlice(it.Object, "spec", "template", "spec", "imagePullSecrets")
			if !slices.ContainsFunc(secrets, func(v any) bool { return v.(map[string]any)["name"] == settings.PullSecretName }) && !saUsesPullSecret(t, cs, &it) {
				t.Errorf("%s %s/%s does not use the pull secret", it.GetKind(), it.GetNamespace(), it.GetName())
			}
		}
	}
	if templates < 20 {
		t.Errorf("only %d pod templates checked", templates)
	}

	// High availability and workload overrides.
	for _, w := range haWorkloads {
		ns, name, _ := strings.Cut(w, "/")
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s: %v", w, err)
			continue
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != s.HighAvailability.Replicas {
			t.Errorf("%s: replicas %v, want %d", w, d.Spec.Replicas, s.HighAvailability.Replicas)
		}
		if d.Status.AvailableReplicas != s.HighAvailability.Replicas {
			t.Errorf("%s: %d available, want %d", w, d.Status.AvailableReplicas, s.HighAvailability.Replicas)
		}
	}
	act, err := cs.AppsV1().Deployments("knative-serving").Get(ctx, "activator", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pt := act.Spec.Template
	if pt.Annotations["example.com/owner"] != "platform" || pt.Spec.NodeSelector["kubernetes.io/os"] != "linux" || len(pt.Spec.Tolerations) == 0 || pt.Spec.Tolerations[0].Key != "example.com/dedicated" {
		t.Errorf("activator pod template: annotations %v, nodeSelector %v, tolerations %v", pt.Annotations, pt.Spec.NodeSelector, pt.Spec.Tolerations)
	}
	for _, c := range pt.Spec.Containers {
		if c.Name != "activator" {
			continue
		}
		if c.Resources.Requests.Cpu().String() != "350m" || !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "TMBOX_TEST" && e.Value == "on" }) {
			t.Errorf("activator container: requests %v, env %v", c.Resources.Requests, c.Env)
		}
	}
	ctrl, _ := cs.AppsV1().Deployments("knative-serving").Get(ctx, "controller", metav1.GetOptions{})
	if !slices.ContainsFunc(ctrl.Spec.Template.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == "SSL_CERT_DIR" }) {
		t.Errorf("Knative Serving's controller does not trust the registry CA (no SSL_CERT_DIR)")
	}
	svc, err := cs.CoreV1().Services("istio-system").Get(ctx, "istio-ingressgateway", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Annotations["example.com/lb"] != "internal" {
		t.Errorf("gateway Service type %s annotations %v", svc.Spec.Type, svc.Annotations)
	}
}

// saUsesPullSecret reports whether the pod template's ServiceAccount
// carries the pull secret.
func saUsesPullSecret(t *testing.T, cs kubernetes.Interface, u *unstructured.Unstructured) bool {
	name, _, _ := unstructured.NestedString(u.Object, "spec", "template", "spec", "serviceAccountName")
	if name == "" {
		name = "default"
	}
	sa, err := cs.CoreV1().ServiceAccounts(u.GetNamespace()).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	return slices.ContainsFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == settings.PullSecretName })
}

// upstreamConfigMaps reads the _example of release's Knative ConfigMaps
// from the upstream files, by namespace/name.
func upstreamConfigMaps(t *testing.T, release string) map[string]string {
	t.Helper()
	cat, _ := catalog.Load("")
	rel, err := cat.Release(release)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, comp := range rel.ComponentList() {
		if comp.Name != catalog.KnativeServing && comp.Name != catalog.KnativeEventing {
			continue
		}
		for _, a := range comp.Assets {
			data, err := os.ReadFile(filepath.Join(mirrorDir(t), a.Path))
			if err != nil {
				t.Fatal(err)
			}
			objs, err := apply.DecodeManifest(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if o.GetKind() == "ConfigMap" {
					ex, _, _ := unstructured.NestedString(o.Object, "data", "_example")
					out[o.GetNamespace()+"/"+o.GetName()] = ex
				}
			}
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// writtenBetween lists the objects tmbox wrote (or added) between two
// snapshots.
func writtenBetween(before, after map[string]liveObject) []string {
	var out []string
	for k, o := range after {
		if b, ok := before[k]; !ok || b.TmboxWrite != o.TmboxWrite {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// TestIntegrationPlatformSettings installs 1.21 with every setting, checks
// that each holds, that a re-run writes nothing, that configure changes
// only what a setting shapes, and that each upgrade hop keeps them.
func TestIntegrationPlatformSettings(t *testing.T) {
	c := suite.Cluster(t)
	cfg := c.Config
	dir := t.TempDir()
	s := fullPlatform(t, dir)
	if _, err := install(t, cfg, "1.21", func(o *Options) { o.Platform = s }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = (&Uninstall{Config: cfg, Purge: true}).Run(context.Background()) })
	checkPlatform(t, cfg, "1.21", s)
	st, err := (&GetStatus{Config: cfg}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.URLPattern != "https://{name}.{namespace}.apps.example.com" || st.Platform == nil || st.Platform.Domain != s.Domain {
		t.Errorf("status: url %q platform %+v", st.URLPattern, st.Platform)
	}
	if st.Ingress == nil || st.Ingress.Type != "NodePort" || st.Ingress.HTTPNodePort == 0 || !st.Healthy {
		t.Errorf("status: healthy %v ingress %+v", st.Healthy, st.Ingress)
	}

	t.Run("a re-run with the same settings writes nothing", func(t *testing.T) {
		before := snapshot(t, cfg)
		if _, err := install(t, cfg, "1.21", func(o *Options) { o.Platform = s }); err != nil {
			t.Fatal(err)
		}
		assertNoTmboxWrites(t, before, snapshot(t, cfg))
	})
	t.Run("a re-run without settings keeps them", func(t *testing.T) {
		before := snapshot(t, cfg)
		if _, err := install(t, cfg, "1.21", nil); err != nil {
			t.Fatal(err)
		}
		assertNoTmboxWrites(t, before, snapshot(t, cfg))
	})
	t.Run("configure the domain writes config-domain only", func(t *testing.T) {
		before := snapshot(t, cfg)
		var events strings.Builder
		cf := &Configure{Options: Options{Mirror: mirrorDir(t), PhaseTimeout: 2 * time.Minute, Platform: settings.Settings{Domain: "fn.example.org"}, Reporter: &PlainReporter{W: &events}}, Config: cfg}
		plan, err := cf.Plan(context.Background())
		if err != nil {
			t.Fatalf("configure plan: %v\n%s", err, events.String())
		}
		var planned []string
		for _, p := range plan.Phases {
			for _, d := range p.Components {
				planned = append(planned, d.Details...)
			}
		}
		if want := []string{"change ConfigMap knative-serving/config-domain"}; !slices.Equal(planned, want) {
			t.Errorf("configure plan lists %v, want %v", planned, want)
		}
		if _, err := cf.Run(context.Background()); err != nil {
			t.Fatalf("configure: %v\n%s", err, events.String())
		}
		if got, want := writtenBetween(before, snapshot(t, cfg)), []string{"/ConfigMap knative-serving/config-domain"}; !slices.Equal(got, want) {
			t.Errorf("configure wrote %v, want %v", got, want)
		}
		s.Domain = "fn.example.org"
	})
	refusals := []struct {
		name string
		mut  func(*settings.Settings)
		want string
	}{
		{"unknown ConfigMap", func(p *settings.Settings) { p.Config = map[string]map[string]settings.Value{"config-nope": {"a": "b"}} }, "config-nope"},
		{"unknown workload", func(p *settings.Settings) {
			p.Workloads = map[string]settings.Workload{"knative-serving/nope": {Annotations: map[string]string{"a": "b"}}}
		}, "knative-serving/nope"},
		{"unknown container", func(p *settings.Settings) {
			p.Workloads = map[string]settings.Workload{"knative-serving/activator": {Containers: map[string]settings.Container{"nope": {Env: map[string]string{"A": "b"}}}}}
		}, "nope"},
		{"negative replicas", func(p *settings.Settings) {
			n := int32(-1)
			p.Workloads = map[string]settings.Workload{"knative-serving/activator": {Replicas: &n}}
		}, "replicas"},
		{"key of another certificate", func(p *settings.Settings) {
			_, other := writeCert(t, dir, "other", "other.example.com")
			p.TLS = &settings.TLS{CertFile: s.TLS.CertFile, KeyFile: other}
		}, "tls"},
		{"pull secret not Docker config JSON", func(p *settings.Settings) {
			f := filepath.Join(dir, "bad.json")
			writeFile(t, f, []byte(`{"username": "x"}`))
			p.Registry = &settings.Registry{PullSecret: f}
		}, "pullSecret"},
	}
	for _, tt := range refusals {
		t.Run("refused: "+tt.name, func(t *testing.T) {
			before := snapshot(t, cfg)
			var p settings.Settings
			tt.mut(&p)
			_, err := install(t, cfg, "1.21", func(o *Options) { o.Platform = p })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("install: %v, want an error naming %q", err, tt.want)
			}
			assertNoTmboxWrites(t, before, snapshot(t, cfg))
		})
	}
	for _, to := range []string{"1.22", "1.23"} {
		t.Run("upgrade to "+to+" keeps every setting", func(t *testing.T) {
			if err := upgrade(t, cfg, to, nil); err != nil {
				t.Fatal(err)
			}
			checkAtRelease(t, cfg, to)
			checkPlatform(t, cfg, to, s)
		})
	}
}

// TestIntegrationUpgradeRefusesLostWorkload: a workload named in the
// settings that the target release lacks stops the upgrade before its
// first write, naming the workload and the hop.
func TestIntegrationUpgradeRefusesLostWorkload(t *testing.T) {
	c := suite.Cluster(t)
	cfg := c.Config
	catFile, mirror := catalogWithAsset(t, catalog.NetIstio, "1.21.4", "example.com/legacy:1", []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: legacy
  namespace: knative-serving
spec:
  selector: {matchLabels: {app: legacy}}
  template:
    metadata: {labels: {app: legacy}}
    spec:
      containers:
      - name: c
        image: example.com/legacy:1
`))
	p := settings.Settings{Workloads: map[string]settings.Workload{"knative-serving/legacy": {Annotations: map[string]string{"example.com/a": "b"}}}}
	if _, err := install(t, cfg, "1.21", func(o *Options) { o.CatalogFile, o.Mirror, o.Platform = catFile, mirror, p }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = (&Uninstall{Config: cfg, Purge: true}).Run(context.Background()) })
	before := snapshot(t, cfg)
	err := upgrade(t, cfg, "1.22", func(u *Upgrade) { u.CatalogFile, u.Mirror = catFile, mirror })
	if err == nil {
		t.Fatal("upgrade succeeded; want it refused")
	}
	for _, want := range []string{"knative-serving/legacy", "hop 1/1 1.21→1.22"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	assertNoTmboxWrites(t, before, snapshot(t, cfg))
}

// TestIntegrationIngressPending: on a cluster with no load-balancer
// implementation, the gateway's LoadBalancer Service stays pending:
// status says so and is unhealthy, preflight warns; a NodePort gateway
// needs none.
func TestIntegrationIngressPending(t *testing.T) {
	shared := suite.Cluster(t)
	c := testcluster.StartT(t, testcluster.Options{Nodes: 1, NoLoadBalancer: true, BinDir: shared.BinDir, SharedWebhookStandIn: shared.WebhookStandIn})
	comps := []string{catalog.Istio, catalog.KnativeServing, catalog.NetIstio}
	rep, err := (&Preflight{Options: Options{Release: "1.21", Mirror: mirrorDir(t), Components: comps}, Config: c.Config}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rep.Results {
		if r.Name == preflight.CheckLoadBalancer {
			found = true
			if r.Status != preflight.StatusWarn {
				t.Errorf("load-balancer check %s: %s, want a warning", r.Status, r.Message)
			}
		}
	}
	if !found {
		t.Error("no load-balancer check")
	}
	if _, err := install(t, c.Config, "1.21", func(o *Options) { o.Components = comps }); err != nil {
		t.Fatal(err)
	}
	st, err := (&GetStatus{Config: c.Config}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Healthy || st.Ingress == nil || !strings.Contains(st.Ingress.Problem, "LoadBalancer still waiting for an address") {
		t.Errorf("status healthy %v ingress %+v, want unhealthy with a pending LoadBalancer", st.Healthy, st.Ingress)
	}
	for _, comp := range st.Components {
		if !comp.Healthy {
			t.Errorf("component %s unhealthy: %v", comp.Name, comp.Problems)
		}
	}
	cf := &Configure{Options: Options{Mirror: mirrorDir(t), PhaseTimeout: 2 * time.Minute, Platform: settings.Settings{Gateway: &settings.Gateway{Type: "NodePort"}}}, Config: c.Config}
	if _, err := cf.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err = (&GetStatus{Config: c.Config}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Healthy || st.Ingress.Type != "NodePort" || !strings.HasPrefix(st.Ingress.Endpoint, "http://NODE-ADDRESS:") {
		t.Errorf("after --gateway-type NodePort: healthy %v ingress %+v", st.Healthy, st.Ingress)
	}
}

// TestIntegrationDrift: a deleted Deployment and an edited ConfigMap are
// reported as drifted by status, which is then unhealthy; a re-run of
// install repairs both and status is clean again.
func TestIntegrationDrift(t *testing.T) {
	shared := suite.Cluster(t)
	c := testcluster.StartT(t, testcluster.Options{Nodes: 1, BinDir: shared.BinDir, SharedWebhookStandIn: shared.WebhookStandIn})
	comps := []string{catalog.Istio, catalog.KnativeServing, catalog.NetIstio}
	if _, err := install(t, c.Config, "1.21", func(o *Options) { o.Components = comps }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// One GetStatus for every check, as status --watch runs it: the
	// release it rendered once still shows each change.
	get := &GetStatus{Config: c.Config, Mirror: mirrorDir(t)}
	status := func() *Status {
		t.Helper()
		st, err := get.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.DriftUnchecked != "" {
			t.Fatalf("drift not checked: %s", st.DriftUnchecked)
		}
		return st
	}
	drifted := func(st *Status) []string {
		var out []string
		for _, comp := range st.Components {
			out = append(out, comp.Drifted...)
		}
		return out
	}
	if d := drifted(status()); len(d) != 0 {
		t.Fatalf("a fresh install has drift: %v", d)
	}
	cs := kubernetes.NewForConfigOrDie(c.Config)
	if err := cs.AppsV1().Deployments("knative-serving").Delete(ctx, "autoscaler", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cm, err := cs.CoreV1().ConfigMaps("knative-serving").Get(ctx, "config-network", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["_example"] = "edited by hand"
	if _, err := cs.CoreV1().ConfigMaps("knative-serving").Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	st := status()
	d := strings.Join(drifted(st), "\n")
	for _, want := range []string{"Deployment.apps knative-serving/autoscaler is missing", "ConfigMap knative-serving/config-network changed: data._example (by kubectl-edit)"} {
		if !strings.Contains(d, want) {
			t.Errorf("drift %q lacks %q", d, want)
		}
	}
	if st.Healthy {
		t.Error("status is healthy with drift")
	}
	if _, err := install(t, c.Config, "1.21", func(o *Options) { o.Components = comps }); err != nil {
		t.Fatal(err)
	}
	if d := drifted(status()); len(d) != 0 {
		t.Errorf("drift after install repaired it: %v", d)
	}
	cm, _ = cs.CoreV1().ConfigMaps("knative-serving").Get(ctx, "config-network", metav1.GetOptions{})
	if cm.Data["_example"] == "edited by hand" {
		t.Error("the re-run did not restore the edited ConfigMap")
	}
}
