package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/storage/driver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/installer/wait"
)

// istioGatewayChart packages Istio's gateway chart from the Istio
// module's manifests/charts/gateway into dir, as `helm package` would,
// and returns the archive's path.
func istioGatewayChart(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/istio").Output()
	if err != nil {
		t.Fatalf("find the Istio module: %v", err)
	}
	ch, err := loader.LoadDir(filepath.Join(strings.TrimSpace(string(out)), "manifests", "charts", "gateway"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := chartutil.Save(ch, dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// addonConfig writes an InstallConfig declaring one add-on.
func addonConfig(t *testing.T, dir, file, addon string) string {
	t.Helper()
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, []byte("apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\naddons:\n"+addon), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestIntegrationAirGapAddons is issue 19's air-gap acceptance: a bundle
// created with --config carries Istio's gateway chart as the add-on
// tenant-gateway (an init container from its values runs an image of the
// "upstream" registry) beside a synthetic release; bundle inspect lists
// the chart and its images; with the upstream registry stopped and the
// chart file gone, install --bundle --registry runs the add-on's pods from
// the private registry by digest, Helm's stored manifest holds the
// rewritten reference, the Deployment is Available, and a re-run makes no
// new revision. Bad add-ons are refused by bundle create with no file
// written, and values rendering an image the bundle lacks by install
// before any write.
func TestIntegrationAirGapAddons(t *testing.T) {
	c := startOwnCluster(t, suite.Cluster(t))
	f := newAirgapFixture(t)
	dir := t.TempDir()

	// The add-on's own image, on the upstream registry.
	own, err := random.Layer(8<<10, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, own)
	if err != nil {
		t.Fatal(err)
	}
	waitRef := f.upstream + "/tenant/wait:1.0"
	waitName, err := name.ParseReference(waitRef)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(waitName, img); err != nil {
		t.Fatal(err)
	}
	chartDir := filepath.Join(dir, "charts")
	tgz := istioGatewayChart(t, chartDir)
	tgzSHA := fileSHA(t, tgz)
	const ns, release = "tenant", "tenant-gateway"
	addon := func(chart, image string) string {
		return fmt.Sprintf("- name: %s\n  chart: %s\n  namespace: %s\n  timeout: 2m\n  values:\n    initContainers:\n    - name: wait\n      image: %s\n", release, chart, ns, image)
	}
	cfg := addonConfig(t, dir, "appliance.yaml", addon(tgz, waitRef))

	// Connected side.
	bundleFile := filepath.Join(dir, "tmbox-1.30-addons.bundle")
	out, errOut, err := run(t, "--catalog", f.catalog, "--config", cfg, "bundle", "create", "--release", "1.30", "--mirror", f.mirror, "--file", bundleFile)
	if err != nil {
		t.Fatalf("bundle create --config: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "add-ons tenant-gateway") || !strings.Contains(errOut, "add-on tenant-gateway (chart gateway ") {
		t.Errorf("bundle create does not say it packed the add-on:\n%s\n%s", out, errOut)
	}
	if _, _, err := run(t, "bundle", "verify", bundleFile); err != nil {
		t.Fatalf("verify: %v", err)
	}
	out, _, err = run(t, "bundle", "inspect", bundleFile, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var inspected bundle.Manifest
	if err := json.Unmarshal([]byte(out), &inspected); err != nil {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	if len(inspected.Addons) != 1 {
		t.Fatalf("inspect lists add-ons %+v, want tenant-gateway", inspected.Addons)
	}
	a := inspected.Addons[0]
	if a.Name != release || a.Chart != "gateway" || a.Version == "" || a.SHA256 != tgzSHA || a.ChartDigest != "sha256:"+tgzSHA || !slices.Equal(a.Images, []string{waitRef}) {
		t.Errorf("inspect lists %+v, want tenant-gateway, chart gateway, sha256 %s, images [%s]", a, tgzSHA, waitRef)
	}
	var waitDigest string
	for _, img := range inspected.Images {
		if img.Ref == waitRef {
			waitDigest = img.Digest
		}
	}
	if waitDigest == "" {
		t.Fatalf("the bundle's images lack %s", waitRef)
	}
	text, _, err := run(t, "bundle", "inspect", bundleFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ADDON", release, "gateway " + a.Version, tgzSHA, waitRef} {
		if !strings.Contains(strings.Join(strings.Fields(text), " "), want) {
			t.Errorf("inspect's table lacks %q:\n%s", want, text)
		}
	}

	// Isolated side: nothing upstream, and the chart file is not on this
	// host (the config still names it).
	f.stopUpstream()
	if err := os.RemoveAll(chartDir); err != nil {
		t.Fatal(err)
	}
	private := startRegistry(t) + "/mirror"
	state := filepath.Join(dir, "state")
	common := []string{"--config", cfg, "--kubeconfig", c.Kubeconfig, "--bundle", bundleFile, "--registry", private, "--state-dir", state, "--yes", "--timeout", "2m"}

	t.Run("values rendering an image the bundle lacks are refused before any write", func(t *testing.T) {
		other := addonConfig(t, dir, "other.yaml", addon(tgz, f.upstream+"/tenant/other:2.0"))
		before := clusterVersions(t, c.Config)
		args := slices.Clone(common)
		args[1] = other
		_, _, err := run(t, append([]string{"install"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "runs image "+f.upstream+"/tenant/other:2.0, which the bundle does not hold") {
			t.Fatalf("got %v", err)
		}
		if _, code := outcome(context.Background(), err); code != exitUsage {
			t.Errorf("exit code %d, want %d", code, exitUsage)
		}
		// Objects the cluster's own controllers create meanwhile carry no
		// tmbox field manager ("null"): only tmbox's entries count.
		after := clusterVersions(t, c.Config)
		keys := maps.Clone(before)
		maps.Copy(keys, after)
		for k := range keys {
			if b, a := before[k], after[k]; b != a && !(b == "" && a == "null") && !(b == "null" && a == "") {
				t.Errorf("the refused install wrote %s (%s → %s)", k, b, a)
			}
		}
	})

	if _, errOut, err := run(t, append([]string{"install"}, common...)...); err != nil {
		t.Fatalf("install --bundle --registry with the add-on: %v\n%s", err, errOut)
	}
	cs := kubernetes.NewForConfigOrDie(c.Config)
	ctx := context.Background()
	rewritten, err := bundle.RegistryRef(private, waitRef, waitDigest)
	if err != nil {
		t.Fatal(err)
	}
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, release, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := d.Spec.Template.Spec
	if len(spec.InitContainers) != 1 || spec.InitContainers[0].Image != rewritten {
		t.Errorf("the Deployment's init containers %+v, want %s", spec.InitContainers, rewritten)
	}
	if !strings.HasPrefix(rewritten, private+"/") || !strings.HasSuffix(rewritten, "@"+waitDigest) {
		t.Errorf("rewritten reference %s is not %s/…@%s", rewritten, private, waitDigest)
	}
	for _, ctr := range spec.Containers {
		// The gateway chart's proxy is Istio's injection placeholder:
		// istiod's webhook gives it the mesh's proxy image (the stack's,
		// itself from the registry). The test cluster's webhook stand-in
		// admits without patching.
		if ctr.Image != "auto" {
			t.Errorf("container %s runs %s, want the chart's injection placeholder", ctr.Name, ctr.Image)
		}
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := wait.WorkloadReady("Deployment")(&unstructured.Unstructured{Object: m}); !ok {
		t.Errorf("Deployment %s/%s is not Available: %s", ns, release, why)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, p := range pods.Items {
		for _, ctr := range p.Spec.InitContainers {
			running++
			if ctr.Image != rewritten {
				t.Errorf("pod %s init container %s runs %s, want %s", p.Name, ctr.Name, ctr.Image, rewritten)
			}
		}
	}
	if running == 0 {
		t.Error("no add-on pod runs the init container")
	}
	if r, err := name.ParseReference(rewritten); err != nil {
		t.Error(err)
	} else if desc, err := remote.Head(r); err != nil || desc.Digest.String() != waitDigest {
		t.Errorf("the private registry holds %s as %v (%v), want %s", rewritten, desc, err, waitDigest)
	}
	history := func() []string {
		t.Helper()
		rels, err := driver.NewSecrets(cs.CoreV1().Secrets(ns)).Query(map[string]string{"name": release, "owner": "helm"})
		if err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rels {
			out = append(out, fmt.Sprintf("%d:%s", r.Version, r.Info.Status))
			if !strings.Contains(r.Manifest, rewritten) || strings.Contains(r.Manifest, "image: "+waitRef) {
				t.Errorf("Helm's stored manifest of revision %d does not hold the rewritten reference only", r.Version)
			}
		}
		slices.Sort(out)
		return out
	}
	if got := history(); !slices.Equal(got, []string{"1:deployed"}) {
		t.Errorf("Helm history %v, want revision 1 deployed", got)
	}
	st, err := (&installer.GetStatus{Config: c.Config}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Addons) != 1 || st.Addons[0].Name != release || st.Addons[0].Status != "deployed" || st.Addons[0].Revision != 1 {
		t.Errorf("status lists add-ons %+v", st.Addons)
	}

	// A re-run from the same bundle and config is a no-op for the add-on.
	if _, errOut, err := run(t, append([]string{"install"}, common...)...); err != nil {
		t.Fatalf("re-run: %v\n%s", err, errOut)
	}
	if got := history(); !slices.Equal(got, []string{"1:deployed"}) {
		t.Errorf("after a re-run Helm history is %v, want revision 1 only", got)
	}

	t.Run("bad add-ons are refused by bundle create with no file written", func(t *testing.T) {
		work := t.TempDir()
		corrupt := filepath.Join(work, "corrupt.tgz")
		if err := os.WriteFile(corrupt, []byte("\x1f\x8bnot a chart"), 0o644); err != nil {
			t.Fatal(err)
		}
		missing := filepath.Join(work, "no-such-chart.tgz")
		tests := []struct {
			name, addon, want string
		}{
			{"a chart path that does not exist", addon(missing, waitRef),
				`addons[0].chart: add-on "tenant-gateway": chart: stat ` + missing + `: no such file or directory`},
			{"a corrupt .tgz", addon(corrupt, waitRef),
				`addons[0].chart: add-on "tenant-gateway": chart ` + corrupt + ` is not a chart archive`},
			{"an oci:// chart without digest", "- name: tenant-gateway\n  chart: oci://registry.example.com/charts/gateway\n  version: 1.28.0\n  namespace: tenant\n",
				`addons[0].digest: add-on "tenant-gateway": missing: in air-gap mode an oci:// chart must be pinned by the sha256 digest of its archive`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				cfgDir, outDir := t.TempDir(), t.TempDir()
				bad := addonConfig(t, cfgDir, "bad.yaml", tt.addon)
				file := filepath.Join(outDir, "bad.bundle")
				_, _, err := run(t, "--catalog", f.catalog, "--config", bad, "bundle", "create", "--release", "1.30", "--mirror", f.mirror, "--file", file)
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), bad) {
					t.Fatalf("got %v, want %q naming %s", err, tt.want, bad)
				}
				if _, code := outcome(context.Background(), err); code != exitUsage {
					t.Errorf("exit code %d, want %d", code, exitUsage)
				}
				if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
					t.Errorf("bundle create left %v", entries)
				}
			})
		}
	})
}
