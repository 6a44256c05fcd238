package addons

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// hookedChart writes a chart whose Deployment and pre-install/pre-upgrade
// hook Job (kept after it succeeds) run images from its values.
func hookedChart(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "hooked")
	files := map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: hooked\nversion: 0.1.0\n",
		"values.yaml": "image: registry.example.com/tenant/server:1.0\nhookImage: registry.example.com/tenant/migrate:1.0\n",
		"templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}}
spec:
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec:
      containers:
      - {name: server, image: {{ .Values.image }}}
`,
		"templates/hook.yaml": `apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: migrate, image: {{ .Values.hookImage }}}
`,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestIntegrationImageRewrite installs an add-on through a private
// registry mapping: the Deployment and the hook Job run the rewritten
// references, Helm's stored manifest holds them, a re-run is a no-op, and
// another mapping (none: a connected run) upgrades the release back to
// the chart's references.
func TestIntegrationImageRewrite(t *testing.T) {
	c := suite.Cluster(t)
	cs := kubernetes.NewForConfigOrDie(c.Config)
	const ns, name = "rewrite", "hooked"
	pin := "@sha256:" + strings.Repeat("7", 64)
	mapping := map[string]string{
		"registry.example.com/tenant/server:1.0":  "registry.local:5000/mirror/tenant/server:1.0" + pin,
		"registry.example.com/tenant/migrate:1.0": "registry.local:5000/mirror/tenant/migrate:1.0" + pin,
		"docker.io/istio/pilot:1.28.6":            "registry.local:5000/mirror/istio/pilot:1.28.6" + pin,
	}
	m, err := newManager(c.Config, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Images = mapping
	a := Addon{Name: name, Chart: hookedChart(t), Namespace: ns, Timeout: Duration(2 * time.Minute)}
	images := func() (string, string) {
		t.Helper()
		d := requireAvailable(t, cs, ns, name)
		ctrs := d.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
		job, err := cs.BatchV1().Jobs(ns).Get(context.Background(), name+"-migrate", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the hook Job: %v", err)
		}
		return ctrs[0].(map[string]any)["image"].(string), job.Spec.Template.Spec.Containers[0].Image
	}
	stored := func() string {
		t.Helper()
		ac, err := m.actionConfig(context.Background(), ns, nil)
		if err != nil {
			t.Fatal(err)
		}
		rel, err := ac.Releases.Last(name)
		if err != nil {
			t.Fatal(err)
		}
		return rel.Manifest
	}

	out, err := ensure(t, m, a)
	if err != nil {
		t.Fatal(err)
	}
	if out.Action != ActionInstalled || out.Revision != 1 {
		t.Errorf("outcome %+v", out)
	}
	server, migrate := images()
	if server != mapping["registry.example.com/tenant/server:1.0"] || migrate != mapping["registry.example.com/tenant/migrate:1.0"] {
		t.Errorf("the Deployment runs %s and the hook Job %s, want the registry's references", server, migrate)
	}
	if manifest := stored(); !strings.Contains(manifest, mapping["registry.example.com/tenant/server:1.0"]) || strings.Contains(manifest, "image: registry.example.com/") {
		t.Errorf("Helm's stored manifest does not hold the rewritten references:\n%s", manifest)
	}

	out, err = ensure(t, m, a)
	if err != nil || out.Action != ActionUnchanged || out.Revision != 1 {
		t.Errorf("re-run with the same mapping: %+v %v", out, err)
	}

	connected, err := newManager(c.Config, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	out, err = ensure(t, connected, a)
	if err != nil || out.Action != ActionUpgraded || out.Revision != 2 {
		t.Errorf("run without the mapping: %+v %v", out, err)
	}
	if server, migrate := images(); server != "registry.example.com/tenant/server:1.0" || migrate != "registry.example.com/tenant/migrate:1.0" {
		t.Errorf("without the mapping the Deployment runs %s and the hook Job %s", server, migrate)
	}
	if got, want := strings.Join(revisions(t, c.Config, ns, name), " "), "1:superseded 2:deployed"; got != want {
		t.Errorf("history %s, want %s", got, want)
	}
	if err := m.Uninstall(context.Background(), name, ns); err != nil {
		t.Fatal(err)
	}
}
