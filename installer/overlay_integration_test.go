package installer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/tmbox/tmbox/catalog"
)

// overlayTwoGateways is an overlay that runs two gateway replicas and
// does not autoscale istiod (tmbox's profile renders its
// HorizontalPodAutoscaler).
const overlayTwoGateways = `apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
spec:
  values:
    pilot:
      autoscaleEnabled: false
  components:
    ingressGateways:
    - name: istio-ingressgateway
      enabled: true
      k8s:
        replicaCount: 2
`

// TestIntegrationCompiledInIstio installs release 1.23's Istio, rendered
// in-process from the compiled-in charts with a user overlay, and checks
// its images are the release's pins and the overlay took effect; then
// that the overlay is kept as the platform settings are: a re-run, status'
// drift check and an upgrade render it again without the file, a copy
// changed in the cluster is refused, and --reset-settings drops it.
func TestIntegrationCompiledInIstio(t *testing.T) {
	c := suite.Cluster(t)
	cfg := c.Config
	overlay := filepath.Join(t.TempDir(), "overlay.yaml")
	if err := os.WriteFile(overlay, []byte(overlayTwoGateways), 0o600); err != nil {
		t.Fatal(err)
	}
	istioOnly := func(o *Options) {
		o.Components = RequiredComponents()
		o.SkipPhases = []string{PhaseKnativeServing}
	}
	if _, err := install(t, cfg, "1.23", func(o *Options) { istioOnly(o); o.IstioOverlay = overlay }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var events bytes.Buffer
		start := time.Now()
		if err := (&Uninstall{Config: cfg, Purge: true, Reporter: &PlainReporter{W: &events}}).Run(context.Background()); err != nil {
			t.Errorf("uninstall: %v", err)
		}
		t.Logf("uninstall took %s:\n%s", time.Since(start).Round(time.Millisecond), events.String())
	})
	cs := kubernetes.NewForConfigOrDie(cfg)
	deploys, err := cs.AppsV1().Deployments("istio-system").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"istiod": "docker.io/istio/pilot:1.30.3", "istio-ingressgateway": "docker.io/istio/proxyv2:1.30.3"}
	for _, d := range deploys.Items {
		if img := d.Spec.Template.Spec.Containers[0].Image; img != want[d.Name] {
			t.Errorf("%s runs %s, want %s", d.Name, img, want[d.Name])
		}
		delete(want, d.Name)
	}
	if len(want) > 0 {
		t.Errorf("missing Deployments %v", want)
	}
	checkOverlayKept(t, cfg, 2, overlayTwoGateways)

	t.Run("a re-run without the overlay keeps it and writes nothing", func(t *testing.T) {
		before := snapshot(t, cfg)
		var events bytes.Buffer
		if _, err := install(t, cfg, "1.23", func(o *Options) { istioOnly(o); o.Reporter = &PlainReporter{W: &events} }); err != nil {
			t.Fatal(err)
		}
		assertNoTmboxWrites(t, before, snapshot(t, cfg))
		if !strings.Contains(events.String(), "Istio overlay "+overlay+" kept from the installed release 1.23") {
			t.Errorf("the run does not say it kept the overlay:\n%s", events.String())
		}
		checkOverlayKept(t, cfg, 2, overlayTwoGateways)
	})
	t.Run("status checks drift against the overlay's objects", func(t *testing.T) {
		st, err := (&GetStatus{Config: cfg, Mirror: mirrorDir(t)}).Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// Rendered without the overlay, istiod's
		// HorizontalPodAutoscaler would be "missing".
		if st.DriftUnchecked != "" || !st.Healthy {
			t.Errorf("status: healthy %v, drift unchecked %q, components %+v", st.Healthy, st.DriftUnchecked, st.Components)
		}
		if st.IstioOverlay == nil || st.IstioOverlay.File != overlay {
			t.Errorf("status shows overlay %+v, want %s", st.IstioOverlay, overlay)
		}
		if err := cs.AppsV1().Deployments("istio-system").Delete(context.Background(), "istio-ingressgateway", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		st, err = (&GetStatus{Config: cfg, Mirror: mirrorDir(t)}).Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Healthy || !strings.Contains(strings.Join(problems(st), "\n"), "Deployment.apps istio-system/istio-ingressgateway is missing") {
			t.Errorf("a deleted gateway is not reported: healthy %v, problems %q", st.Healthy, problems(st))
		}
		if _, err := install(t, cfg, "1.23", istioOnly); err != nil {
			t.Fatal(err)
		}
		checkOverlayKept(t, cfg, 2, overlayTwoGateways)
	})
	t.Run("a kept overlay changed in the cluster is refused", func(t *testing.T) {
		cm, err := cs.CoreV1().ConfigMaps("istio-system").Get(context.Background(), OverlayConfigMap, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		orig := cm.Data[OverlayKey]
		cm.Data[OverlayKey] = strings.Replace(orig, "replicaCount: 2", "replicaCount: 5", 1)
		if _, err := cs.CoreV1().ConfigMaps("istio-system").Update(context.Background(), cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, cfg)
		_, err = install(t, cfg, "1.23", istioOnly)
		if err == nil || !strings.Contains(err.Error(), "ConfigMap istio-system/"+OverlayConfigMap+" was changed since tmbox wrote it") || !strings.Contains(err.Error(), "--istio-overlay "+overlay+" again") {
			t.Fatalf("install: %v, want the changed overlay refused, naming its ConfigMap and the flag", err)
		}
		assertNoTmboxWrites(t, before, snapshot(t, cfg))
		// Giving the file again repairs it.
		if _, err := install(t, cfg, "1.23", func(o *Options) { istioOnly(o); o.IstioOverlay = overlay }); err != nil {
			t.Fatal(err)
		}
		checkOverlayKept(t, cfg, 2, overlayTwoGateways)
	})
	t.Run("--reset-settings drops it", func(t *testing.T) {
		if _, err := install(t, cfg, "1.23", func(o *Options) { istioOnly(o); o.ResetPlatform = true }); err != nil {
			t.Fatal(err)
		}
		checkOverlayKept(t, cfg, 1, "")
	})
	t.Run("an upgrade keeps it", func(t *testing.T) {
		if _, err := install(t, cfg, "1.23", func(o *Options) { istioOnly(o); o.IstioOverlay = overlay }); err != nil {
			t.Fatal(err)
		}
		checkOverlayKept(t, cfg, 2, overlayTwoGateways)
		if err := upgrade(t, cfg, "1.24", func(u *Upgrade) { u.CatalogFile = catalogWithNextRelease(t) }); err != nil {
			t.Fatal(err)
		}
		checkOverlayKept(t, cfg, 2, overlayTwoGateways)
	})
}

// problems lists every component's problems of a status.
func problems(st *Status) []string {
	var out []string
	for _, c := range st.Components {
		out = append(out, c.Problems...)
	}
	return out
}

// checkOverlayKept checks the gateway's replicas, istiod's
// HorizontalPodAutoscaler (none with overlayTwoGateways) and
// what the cluster keeps of the overlay: its ConfigMap and the state's
// digest, or neither for "".
func checkOverlayKept(t *testing.T, cfg *rest.Config, replicas int32, kept string) {
	t.Helper()
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(cfg)
	gw, err := cs.AppsV1().Deployments("istio-system").Get(ctx, "istio-ingressgateway", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *gw.Spec.Replicas != replicas {
		t.Errorf("gateway replicas %d, want %d", *gw.Spec.Replicas, replicas)
	}
	hpas, err := cs.AutoscalingV2().HorizontalPodAutoscalers("istio-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if (kept != "") != (len(hpas.Items) == 0) {
		t.Errorf("%d HorizontalPodAutoscalers with overlay %v", len(hpas.Items), kept != "")
	}
	st, err := (&stateStore{Client: cs}).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := cs.CoreV1().ConfigMaps("istio-system").Get(ctx, OverlayConfigMap, metav1.GetOptions{})
	switch {
	case kept == "":
		if !apierrors.IsNotFound(err) || st.IstioOverlay != nil {
			t.Errorf("no overlay: its ConfigMap: %v; state %+v", err, st.IstioOverlay)
		}
	case err != nil:
		t.Errorf("the overlay's ConfigMap: %v", err)
	default:
		ov := &istioOverlay{data: []byte(cm.Data[OverlayKey])}
		if cm.Data[OverlayKey] != kept || st.IstioOverlay == nil || st.IstioOverlay.SHA256 != ov.digest() {
			t.Errorf("kept overlay %q, state %+v", cm.Data[OverlayKey], st.IstioOverlay)
		}
	}
}

// catalogWithNextRelease writes the embedded catalog with one more
// release, 1.24: 1.23's pins, Knative's renamed 1.24.0 (the same files),
// so that 1.23 → 1.24 is a hop between two releases of the compiled-in
// Istio.
func catalogWithNextRelease(t *testing.T) string {
	t.Helper()
	var cat map[string]any
	if err := yaml.Unmarshal(catalog.EmbeddedCatalog(), &cat); err != nil {
		t.Fatal(err)
	}
	renamed := map[string]bool{catalog.KnativeServing: true, catalog.NetIstio: true, catalog.KnativeEventing: true}
	var next map[string]any
	for _, r := range cat["releases"].([]any) {
		if r.(map[string]any)["name"] == "1.23" {
			next = runtime.DeepCopyJSON(r.(map[string]any))
		}
	}
	next["name"] = "1.24"
	for _, c := range next["components"].([]any) {
		if m := c.(map[string]any); renamed[m["name"].(string)] {
			m["version"] = "1.24.0"
		}
	}
	cat["releases"] = append(cat["releases"].([]any), next)
	for _, c := range cat["components"].([]any) {
		if m := c.(map[string]any); renamed[m["name"].(string)] && m["version"] == "1.23.0" {
			cp := runtime.DeepCopyJSON(m)
			cp["version"] = "1.24.0"
			cat["components"] = append(cat["components"].([]any), cp)
		}
	}
	data, err := yaml.Marshal(cat)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
