package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/internal/testcluster"
	"github.com/tmbox/tmbox/internal/testimage"
)

// startRegistry serves an in-process OCI registry on 127.0.0.1.
func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// airgapFixture is a synthetic catalog of one release ("1.30") or several:
// each component a small manifest whose workloads use images from an
// in-process "upstream" registry — as a container, an init container, an
// env value and a ConfigMap value — and a catalog pinning all of it. Every
// image shares one layer; TriggerMesh's components (their manifests and
// images), the init image and the kind node image are the same in every
// release.
type airgapFixture struct {
	catalog, mirror, upstream string
	// images is every image of every release but the kind node image.
	images []string
	// side is each component's image named only in an env value and a
	// ConfigMap value, in the newest release.
	side map[string]string
	// releaseImages maps each release to its images, kind node image
	// included, sorted.
	releaseImages map[string][]string
	// stopUpstream stops the upstream registry (isolated-side steps
	// prove they need nothing from it).
	stopUpstream func()
	// kindImage is the kind node image of every release.
	kindImage string
}

func newAirgapFixture(t *testing.T) *airgapFixture {
	t.Helper()
	return newAirgapReleases(t, "1.30")
}

// newAirgapReleases is an airgapFixture of the releases named (Knative
// minors, oldest first): release 1.N pins Istio 1.(N-4).0, Knative 1.N.0,
// TriggerMesh 1.27.0 and TriggerMesh Core 1.5.0, so consecutive releases
// are hops the planner allows.
func newAirgapReleases(t *testing.T, releases ...string) *airgapFixture {
	t.Helper()
	upstream := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(upstream.Close)
	f := &airgapFixture{upstream: strings.TrimPrefix(upstream.URL, "http://"), stopUpstream: upstream.Close, mirror: t.TempDir(), side: map[string]string{}, releaseImages: map[string][]string{}}
	shared, err := random.Layer(64<<10, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	pushed := map[string]string{}
	push := func(repo string, byDigest bool) string {
		if ref, ok := pushed[repo]; ok {
			return ref
		}
		ref := f.upstream + "/" + repo
		d := testimage.Push(t, ref, 16<<10, []v1.Layer{shared})
		if byDigest {
			ref = f.upstream + "/" + strings.Split(repo, ":")[0] + "@" + d.String()
		}
		pushed[repo] = ref
		f.images = append(f.images, ref)
		return ref
	}
	init := push("library/busybox:1.36", false)
	f.kindImage = push("kindest/node:v1.34.0", true)
	f.images = slices.DeleteFunc(f.images, func(s string) bool { return s == f.kindImage })
	var cat strings.Builder
	cat.WriteString("apiVersion: tmbox.dev/v1alpha1\nkind: Catalog\nreleases:\n")
	for _, rel := range releases {
		fmt.Fprintf(&cat, "- name: %q\n  kindNodeImage: %s\n  host: {cpus: 2, memory: 4Gi, disk: 10Gi}\n  components:\n", rel, f.kindImage)
		for _, c := range catalog.ComponentNames() {
			fmt.Fprintf(&cat, "  - name: %s\n    version: %q\n", c, testimage.Versions(t, rel)[c])
		}
	}
	cat.WriteString("components:\n")
	written := map[string]bool{}
	for _, rel := range releases {
		f.releaseImages[rel] = []string{f.kindImage}
		for i, c := range catalog.ComponentNames() {
			v := testimage.Versions(t, rel)[c]
			main := push(c+"/controller:"+v, i%2 == 1)
			side := push(c+"/adapter:"+v, i%2 == 0)
			imgs := []string{main, side}
			f.side[c] = side
			initBlock := ""
			if i == 0 {
				initBlock = fmt.Sprintf("      initContainers:\n      - name: init\n        image: %s\n", init)
				imgs = append(imgs, init)
			}
			f.releaseImages[rel] = append(f.releaseImages[rel], imgs...)
			if written[c+"@"+v] {
				continue
			}
			written[c+"@"+v] = true
			manifest := fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: %[1]s-images, namespace: tm-%[1]s}
data:
  adapter-image: %[3]s
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s-controller, namespace: tm-%[1]s}
spec:
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
%[4]s      containers:
      - name: controller
        image: %[2]s
        env:
        - {name: ADAPTER_IMAGE, value: "%[3]s"}
`, c, main, side, initBlock)
			path := fmt.Sprintf("%s/%s/%s.yaml", c, v, c)
			full := filepath.Join(f.mirror, path)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(manifest))
			fmt.Fprintf(&cat, "- name: %s\n  version: %q\n  kubernetes: \">= 1.30\"\n  assets:\n  - name: %s.yaml\n    path: %s\n    url: https://example.invalid/%s\n    size: %d\n    sha256: %s\n  images:\n",
				c, v, c, path, path, len(manifest), hex.EncodeToString(sum[:]))
			slices.Sort(imgs)
			for _, img := range imgs {
				fmt.Fprintf(&cat, "  - %q\n", img)
			}
		}
		slices.Sort(f.releaseImages[rel])
		f.releaseImages[rel] = slices.Compact(f.releaseImages[rel])
	}
	f.catalog = filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(f.catalog, []byte(cat.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// startOwnCluster starts a cluster for one test, sharing the suite's
// binaries and webhook stand-in.
func startOwnCluster(t *testing.T, shared *testcluster.Cluster) *testcluster.Cluster {
	t.Helper()
	return testcluster.StartT(t, testcluster.Options{BinDir: shared.BinDir, SharedWebhookStandIn: shared.WebhookStandIn})
}

// clusterVersions maps every object tmbox has written to to what it wrote:
// its field manager entries, so controllers' status updates (HPAs every
// 15s, kwok's pods) and the objects they create on their own (a young
// cluster's kube-root-ca.crt ConfigMaps) do not count, but any object
// tmbox created, deleted or applied to does.
func clusterVersions(t *testing.T, cfg *rest.Config) map[string]string {
	t.Helper()
	all := testcluster.Objects(t, cfg, func(u *unstructured.Unstructured) string {
		var ours []metav1.ManagedFieldsEntry
		for _, mf := range u.GetManagedFields() {
			if mf.Manager == apply.FieldManager {
				ours = append(ours, mf)
			}
		}
		if len(ours) == 0 {
			return ""
		}
		raw, _ := json.Marshal(ours)
		return string(raw)
	})
	maps.DeleteFunc(all, func(_, v string) bool { return v == "" })
	return all
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestIntegrationAirGap: bundle create → verify → install --bundle
// --registry into the real test cluster, everything inside a loopback-only
// network namespace, with in-process registries as upstream and as the
// private registry.
func TestIntegrationAirGap(t *testing.T) {
	// A cluster of its own: the release it installs is synthetic.
	c := startOwnCluster(t, suite.Cluster(t))
	f := newAirgapFixture(t)
	dir := t.TempDir()
	bundleFile := filepath.Join(dir, "tmbox-1.30.bundle")

	// Connected side: create (twice: reproducible), sign, verify.
	if _, errOut, err := run(t, "bundle", "keygen", "--prefix", filepath.Join(dir, "signing")); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	create := func(out string) {
		t.Helper()
		if _, errOut, err := run(t, "--catalog", f.catalog, "bundle", "create", "--release", "1.30", "--mirror", f.mirror, "--sign-key", filepath.Join(dir, "signing.key"), "--file", out); err != nil {
			t.Fatalf("bundle create: %v\n%s", err, errOut)
		}
	}
	create(bundleFile)
	create(bundleFile + ".again")
	if a, b := fileSHA(t, bundleFile), fileSHA(t, bundleFile+".again"); a != b {
		t.Errorf("bundle create is not reproducible: %s vs %s", a, b)
	}
	if out, _, err := run(t, "bundle", "verify", bundleFile, "--key", filepath.Join(dir, "signing.pub"), "--require-signature"); err != nil || !strings.Contains(out, "signature verified") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	out, _, err := run(t, "bundle", "inspect", bundleFile, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var inspected struct {
		bundle.Manifest
		Signed bool `json:"signed"`
	}
	if err := json.Unmarshal([]byte(out), &inspected); err != nil || !inspected.Signed || inspected.Release != "1.30" || len(inspected.Images) != len(f.images)+1 {
		t.Fatalf("inspect: %v signed=%v release=%s images=%d (want %d)", err, inspected.Signed, inspected.Release, len(inspected.Images), len(f.images)+1)
	}
	digests := map[string]string{}
	for _, img := range inspected.Images {
		digests[img.Ref] = img.Digest
	}

	// Isolated side, tampered bundle: refused naming the entry, no write.
	data, err := os.ReadFile(bundleFile)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("kind: Deployment"))
	if i < 0 {
		t.Fatal("no manifest text in the bundle")
	}
	data[i] ^= 1
	bad := filepath.Join(dir, "tampered.bundle")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "bundle", "verify", bad); err == nil || !strings.Contains(err.Error(), "bundle entry assets/") {
		t.Errorf("verify of a tampered bundle: %v", err)
	}
	private := startRegistry(t) + "/mirror"
	before := clusterVersions(t, c.Config)
	_, _, err = run(t, "install", "--kubeconfig", c.Kubeconfig, "--bundle", bad, "--registry", private, "--state-dir", filepath.Join(dir, "state"), "--yes")
	if err == nil || !strings.Contains(err.Error(), "bundle entry assets/") {
		t.Errorf("install of a tampered bundle: %v", err)
	}
	after := clusterVersions(t, c.Config)
	if !maps.Equal(before, after) {
		for k, v := range after {
			if before[k] != v {
				t.Errorf("a refused install wrote %s", k)
			}
		}
	}

	// Isolated side: install through the private registry.
	start := time.Now()
	out, errOut, err := run(t, "install", "--kubeconfig", c.Kubeconfig, "--bundle", bundleFile, "--bundle-key", filepath.Join(dir, "signing.pub"), "--require-signature",
		"--registry", private, "--state-dir", filepath.Join(dir, "state"), "--yes", "--timeout", "2m", "-o", "json")
	if err != nil {
		t.Fatalf("install --bundle: %v\n%s\n%s", err, out, errOut)
	}
	t.Logf("install --bundle --registry took %s", time.Since(start).Round(time.Millisecond))
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("stdout line is not JSON: %s", line)
		}
	}
	cs := kubernetes.NewForConfigOrDie(c.Config)
	ctx := context.Background()
	want := func(orig string) string {
		ref, err := bundle.RegistryRef(private, orig, digests[orig])
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	checked := 0
	for _, comp := range catalog.ComponentNames() {
		ns := "tm-" + comp
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) == 0 {
			t.Errorf("no pods in %s", ns)
		}
		for _, p := range pods.Items {
			for _, ctr := range append(p.Spec.InitContainers, p.Spec.Containers...) {
				checked++
				d := ctr.Image[strings.LastIndex(ctr.Image, "@")+1:]
				if !strings.HasPrefix(ctr.Image, private+"/") || !strings.Contains(ctr.Image, "@sha256:") {
					t.Errorf("pod %s/%s runs %s, not from %s by digest", ns, p.Name, ctr.Image, private)
				} else if !slices.ContainsFunc(slices.Collect(maps.Values(digests)), func(s string) bool { return s == d }) {
					t.Errorf("pod %s/%s runs %s: digest not in the bundle", ns, p.Name, ctr.Image)
				}
			}
			for _, env := range p.Spec.Containers[0].Env {
				if env.Name == "ADAPTER_IMAGE" && env.Value != want(f.side[comp]) {
					t.Errorf("env value %s, want %s", env.Value, want(f.side[comp]))
				}
			}
		}
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, comp+"-images", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v := cm.Data["adapter-image"]; v != want(f.side[comp]) {
			t.Errorf("ConfigMap value %s, want %s", v, want(f.side[comp]))
		}
	}
	// Every image's digest in the private registry is the bundle's.
	for orig, d := range digests {
		ref, err := name.ParseReference(want(orig))
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Head(ref)
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			continue
		}
		if desc.Digest.String() != d {
			t.Errorf("%s: digest %s, want %s", ref, desc.Digest, d)
		}
	}
	t.Logf("%d pod containers checked", checked)
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "tmbox-system", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Error("no state written")
	}
}

// TestBundleKeygen: keygen writes both files or neither, and replaces
// existing ones only with --force (hardening item 15).
func TestBundleKeygen(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "signing")
	listing := func() []string {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	if _, errOut, err := run(t, "bundle", "keygen", "--prefix", prefix); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if got := listing(); !slices.Equal(got, []string{"signing.key", "signing.pub"}) {
		t.Fatalf("keygen wrote %v", got)
	}
	if fi, err := os.Stat(prefix + ".key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode: %v %v", fi.Mode(), err)
	}
	priv, err := bundle.ReadPrivateKeyFile(prefix + ".key")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := bundle.ReadPublicKeyFile(prefix + ".pub")
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("the public key does not match the private key: %v", err)
	}
	keySHA, pubSHA := fileSHA(t, prefix+".key"), fileSHA(t, prefix+".pub")

	// Either file existing refuses, writing nothing.
	for _, existing := range []string{".key", ".pub"} {
		other := filepath.Join(dir, "other")
		if err := os.WriteFile(other+existing, []byte("keep me\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := run(t, "bundle", "keygen", "--prefix", other)
		if code := exitCode(context.Background(), err); code != exitUsage || !strings.Contains(err.Error(), other+existing+" exists: use --force") {
			t.Errorf("%s exists: exit code %d, error %v", existing, code, err)
		}
		if got := listing(); !slices.Equal(got, []string{"other" + existing, "signing.key", "signing.pub"}) {
			t.Errorf("%s exists: the directory holds %v", existing, got)
		}
		if data, _ := os.ReadFile(other + existing); string(data) != "keep me\n" {
			t.Errorf("%s was overwritten", other+existing)
		}
		os.Remove(other + existing)
	}
	// Without --force the existing pair stays; with it, both are replaced.
	if _, _, err := run(t, "bundle", "keygen", "--prefix", prefix); err == nil {
		t.Error("keygen replaced an existing key without --force")
	}
	if fileSHA(t, prefix+".key") != keySHA || fileSHA(t, prefix+".pub") != pubSHA {
		t.Error("a refused keygen changed the key pair")
	}
	if _, errOut, err := run(t, "bundle", "keygen", "--prefix", prefix, "--force"); err != nil {
		t.Fatalf("--force: %v\n%s", err, errOut)
	}
	if fileSHA(t, prefix+".key") == keySHA || fileSHA(t, prefix+".pub") == pubSHA {
		t.Error("--force did not replace both files")
	}
	priv, _ = bundle.ReadPrivateKeyFile(prefix + ".key")
	if pub, err := bundle.ReadPublicKeyFile(prefix + ".pub"); err != nil || !pub.Equal(priv.Public()) {
		t.Errorf("after --force the keys do not match: %v", err)
	}
	if got := listing(); !slices.Equal(got, []string{"signing.key", "signing.pub"}) {
		t.Errorf("temporary files left: %v", got)
	}
	// A directory in the way is refused even with --force.
	if err := os.Mkdir(filepath.Join(dir, "d.pub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "bundle", "keygen", "--prefix", filepath.Join(dir, "d"), "--force"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory in the way: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "d.key")); err == nil {
		t.Error("d.key written although d.pub could not be")
	}
}

// TestBundleCreateRefusesBadPlatform: --platform must be os/arch[/variant];
// a bad one is a usage error before anything is written (hardening item
// 11).
func TestBundleCreateRefusesBadPlatform(t *testing.T) {
	for _, p := range []string{"../../x", "linux", "Linux/amd64", "linux/amd64/v8/x", "linux/amd64:10.0"} {
		t.Run(p, func(t *testing.T) {
			dir := t.TempDir()
			_, _, err := run(t, "bundle", "create", "--mirror", t.TempDir(), "--platform", "linux/amd64", "--platform", p, "--file", filepath.Join(dir, "b.bundle"))
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--platform") {
				t.Errorf("got %v (%T), want a usage error naming --platform", err, err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("wrote %v", entries)
			}
		})
	}
}

// TestBundleVerifyKeyRequiresSignature: bundle verify --key refuses an
// unsigned bundle (hardening item 4).
func TestBundleVerifyKeyRequiresSignature(t *testing.T) {
	f := newAirgapFixture(t)
	dir := t.TempDir()
	unsigned := filepath.Join(dir, "unsigned.bundle")
	if _, errOut, err := run(t, "--catalog", f.catalog, "bundle", "create", "--release", "1.30", "--mirror", f.mirror, "--file", unsigned); err != nil {
		t.Fatalf("bundle create: %v\n%s", err, errOut)
	}
	if _, errOut, err := run(t, "bundle", "keygen", "--prefix", filepath.Join(dir, "signing")); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	out, _, err := run(t, "bundle", "verify", unsigned, "--key", filepath.Join(dir, "signing.pub"))
	if err == nil || !strings.Contains(err.Error(), "a public key was given, so the bundle must be signed with it") {
		t.Errorf("verify --key of an unsigned bundle: %v\n%s", err, out)
	}
	if out, _, err := run(t, "bundle", "verify", unsigned); err != nil || !strings.Contains(out, "verified") || !strings.Contains(out, "unsigned") {
		t.Errorf("verify without a key: %v\n%s", err, out)
	}
	// An oversized key file is refused naming it and the limit.
	big := filepath.Join(dir, "big.pub")
	if err := os.WriteFile(big, make([]byte, bundle.MaxKeyFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "bundle", "verify", unsigned, "--key", big); err == nil || !strings.Contains(err.Error(), big) || !strings.Contains(err.Error(), "limit of 64 KiB") {
		t.Errorf("oversized key: %v", err)
	}
}

// bundleInspection is bundle inspect -o json.
type bundleInspection struct {
	Release  string                `json:"release"`
	Releases []bundle.ReleaseEntry `json:"releases"`
	Hops     []catalog.Hop         `json:"hops"`
	Images   []bundle.Image        `json:"images"`
	Signed   bool                  `json:"signed"`
}

func inspectBundle(t *testing.T, file string) bundleInspection {
	t.Helper()
	out, errOut, err := run(t, "bundle", "inspect", file, "-o", "json")
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, errOut)
	}
	var got bundleInspection
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("inspect -o json: %v\n%s", err, out)
	}
	return got
}

func (b bundleInspection) names() (releases, hops []string) {
	for _, r := range b.Releases {
		releases = append(releases, r.Name)
	}
	for _, h := range b.Hops {
		hops = append(hops, h.Name())
	}
	return releases, hops
}

// TestBundleMultiRelease: bundle create --from 1.21 --to 1.23 writes one
// signed bundle of the three releases; inspect lists them and the two hops
// they serve; the images of all three share their layers, stored once;
// verify passes, twice the same bytes; tampered copies are refused by
// bundle verify and by the extraction install and upgrade use, with the
// same error.
func TestBundleMultiRelease(t *testing.T) {
	f := newAirgapReleases(t, "1.21", "1.22", "1.23")
	dir := t.TempDir()
	if _, errOut, err := run(t, "bundle", "keygen", "--prefix", filepath.Join(dir, "signing")); err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	key, pub := filepath.Join(dir, "signing.key"), filepath.Join(dir, "signing.pub")
	file := filepath.Join(dir, "walk.bundle")
	create := func(out string, releaseArgs ...string) {
		t.Helper()
		args := append([]string{"--catalog", f.catalog, "bundle", "create", "--mirror", f.mirror, "--sign-key", key, "--file", out}, releaseArgs...)
		stdout, errOut, err := run(t, args...)
		if err != nil {
			t.Fatalf("bundle create %v: %v\n%s", releaseArgs, err, errOut)
		}
		t.Logf("%s", strings.TrimSpace(stdout))
	}
	start := time.Now()
	create(file, "--from", "1.21", "--to", "1.23")
	t.Logf("bundle create --from 1.21 --to 1.23 took %s", time.Since(start).Round(time.Millisecond))
	create(file+".again", "--release", "1.23,1.21", "--release", "1.22")
	if a, b := fileSHA(t, file), fileSHA(t, file+".again"); a != b {
		t.Errorf("--from 1.21 --to 1.23 and --release 1.23,1.21 --release 1.22 differ: %s vs %s", a, b)
	}

	got := inspectBundle(t, file)
	releases, hops := got.names()
	if !slices.Equal(releases, []string{"1.21", "1.22", "1.23"}) || !slices.Equal(hops, []string{"1.21→1.22", "1.22→1.23"}) || got.Release != "1.23" || !got.Signed {
		t.Errorf("inspect: release %s, releases %v, hops %v, signed %v", got.Release, releases, hops, got.Signed)
	}
	var union, refs []string
	for _, imgs := range f.releaseImages {
		union = append(union, imgs...)
	}
	slices.Sort(union)
	union = slices.Compact(union)
	for _, img := range got.Images {
		refs = append(refs, img.Ref)
	}
	if !slices.Equal(refs, union) {
		t.Errorf("images\n%v\nwant\n%v", refs, union)
	}
	table, _, err := run(t, "bundle", "inspect", file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Releases 1.21, 1.22, 1.23", "Hops: 1.21→1.22, 1.22→1.23", "1.21.0  1.22.0  1.23.0"} {
		if !strings.Contains(table, want) {
			t.Errorf("inspect table lacks %q:\n%s", want, table)
		}
	}
	out, _, err := run(t, "bundle", "verify", file, "--key", pub, "--require-signature")
	if err != nil || !strings.Contains(out, "releases 1.21, 1.22, 1.23") || !strings.Contains(out, "signature verified") {
		t.Fatalf("verify: %v\n%s", err, out)
	}

	// Shared layers are stored once: the layout's blobs are exactly the
	// unique digests its images reference.
	b, err := bundle.Extract(context.Background(), file, t.TempDir(), bundle.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unique, references := layoutDigests(t, b)
	blobs, err := os.ReadDir(filepath.Join(b.LayoutDir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != len(unique) || references <= len(unique) {
		t.Errorf("%d blobs stored for %d unique digests (%d references)", len(blobs), len(unique), references)
	}
	t.Logf("%d images, %d blobs, %d blob references", len(got.Images), len(blobs), references)

	// Two releases: one hop.
	two := filepath.Join(dir, "two.bundle")
	create(two, "--release", "1.22,1.23")
	if releases, hops := inspectBundle(t, two).names(); !slices.Equal(releases, []string{"1.22", "1.23"}) || !slices.Equal(hops, []string{"1.22→1.23"}) {
		t.Errorf("--release 1.22,1.23: releases %v, hops %v", releases, hops)
	}

	// Tampered copies, re-signed with the key so only the content checks
	// stand.
	signKey, err := bundle.ReadPrivateKeyFile(key)
	if err != nil {
		t.Fatal(err)
	}
	var oldest string
	for _, img := range f.releaseImages["1.21"] {
		if !slices.Contains(f.releaseImages["1.22"], img) {
			oldest = img
			break
		}
	}
	tampers := []struct {
		name, entry, reason string
		edit                func(files map[string][]byte, m map[string]any)
	}{
		{"index drops an image of the oldest release", "images/index.json", "does not name " + oldest, func(files map[string][]byte, _ map[string]any) {
			var idx map[string]any
			if err := json.Unmarshal(files["images/index.json"], &idx); err != nil {
				t.Fatal(err)
			}
			idx["manifests"] = slices.DeleteFunc(idx["manifests"].([]any), func(d any) bool {
				return d.(map[string]any)["annotations"].(map[string]any)["org.opencontainers.image.ref.name"] == oldest
			})
			files["images/index.json"], _ = json.Marshal(idx)
		}},
		{"catalog entry swapped", bundle.CatalogName, "release 1.22 differs from the manifest's", func(files map[string][]byte, _ map[string]any) {
			// Release 1.22 pins 1.21's Istio.
			c := string(files[bundle.CatalogName])
			i := strings.Index(c, `name: "1.22"`)
			j := i + strings.Index(c[i:], "version: 1.18.0")
			files[bundle.CatalogName] = []byte(c[:j] + "version: 1.17.0" + c[j+len("version: 1.18.0"):])
		}},
		{"Releases edited", bundle.CatalogName, "does not hold exactly releases 1.21, 1.23", func(_ map[string][]byte, m map[string]any) {
			m["releases"] = slices.Delete(m["releases"].([]any), 1, 2)
		}},
	}
	for _, tt := range tampers {
		t.Run(tt.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.bundle")
			rebuildBundleFile(t, file, bad, signKey, tt.edit)
			_, _, verr := run(t, "bundle", "verify", bad, "--key", pub, "--require-signature")
			work := filepath.Join(t.TempDir(), "work")
			_, eerr := bundle.Extract(context.Background(), bad, work, bundle.VerifyOptions{PublicKey: signKey.Public().(ed25519.PublicKey), RequireSignature: true})
			var vbe, ebe *bundle.Error
			if !errors.As(verr, &vbe) || !errors.As(eerr, &ebe) {
				t.Fatalf("verify: %v; extract: %v; want both to refuse with a *bundle.Error", verr, eerr)
			}
			if vbe.Error() != ebe.Error() {
				t.Errorf("verdicts differ:\nverify:  %v\nextract: %v", vbe, ebe)
			}
			if vbe.Entry != tt.entry || !strings.Contains(vbe.Reason, tt.reason) {
				t.Errorf("got %v, want entry %s and reason containing %q", vbe, tt.entry, tt.reason)
			}
			if entries, _ := os.ReadDir(work); len(entries) != 0 {
				t.Errorf("extraction left %v", entries)
			}
		})
	}
}

// layoutDigests returns the unique digests the images of an extracted
// bundle's layout reference (each image's manifest, config and layers) and
// how many references there are.
func layoutDigests(t *testing.T, b *bundle.Extracted) (map[string]bool, int) {
	t.Helper()
	lp, err := layout.FromPath(b.LayoutDir)
	if err != nil {
		t.Fatal(err)
	}
	root, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	unique := map[string]bool{}
	n := 0
	for _, bi := range b.Manifest.Images {
		h, _ := v1.NewHash(bi.Digest)
		img, err := root.Image(h)
		if err != nil {
			t.Fatal(err)
		}
		mf, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		ds := []string{bi.Digest, mf.Config.Digest.String()}
		for _, l := range mf.Layers {
			ds = append(ds, l.Digest.String())
		}
		for _, d := range ds {
			unique[d] = true
			n++
		}
	}
	return unique, n
}

// rebuildBundleFile re-tars the bundle at src into dst after edit changed
// its files (path → content) and its manifest (as generic JSON),
// recomputing every file's size and sha256 and signing the manifest with
// key: a tampered bundle whose digests are consistent.
func rebuildBundleFile(t *testing.T, src, dst string, key ed25519.PrivateKey, edit func(files map[string][]byte, m map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(data))
	files := map[string][]byte{}
	var m map[string]any
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		switch hdr.Name {
		case bundle.ManifestName:
			if err := json.Unmarshal(content, &m); err != nil {
				t.Fatal(err)
			}
		case bundle.SignatureName:
		default:
			files[hdr.Name] = content
		}
	}
	edit(files, m)
	var listed []any
	for _, p := range slices.Sorted(maps.Keys(files)) {
		sum := sha256.Sum256(files[p])
		listed = append(listed, map[string]any{"path": p, "size": len(files[p]), "sha256": hex.EncodeToString(sum[:])})
	}
	m["files"] = listed
	// The manifest's field order, as bundle.Create writes it.
	var mf bundle.Manifest
	raw, _ := json.Marshal(m)
	if err := json.Unmarshal(raw, &mf); err != nil {
		t.Fatal(err)
	}
	manifest, err := json.MarshalIndent(&mf, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	manifest = append(manifest, '\n')
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(name string, content []byte) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(content)), Mode: 0o644, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(content); err != nil {
			t.Fatal(err)
		}
	}
	write(bundle.ManifestName, manifest)
	write(bundle.SignatureName, []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(key, manifest))))
	for _, p := range slices.Sorted(maps.Keys(files)) {
		write(p, files[p])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBundleCreateReleaseFlags: the ways bundle create's --release and
// --from/--to can be wrong are usage errors (exit 2) before anything is
// downloaded or written.
func TestBundleCreateReleaseFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"both forms", []string{"--release", "1.22", "--from", "1.21", "--to", "1.23"}, "give one"},
		{"--from alone", []string{"--from", "1.21"}, "--from and --to go together"},
		{"--to alone", []string{"--to", "1.23"}, "--from and --to go together"},
		{"unknown release", []string{"--release", "1.22,9.9"}, `unknown release "9.9"`},
		{"unknown --to", []string{"--from", "1.21", "--to", "9.9"}, `unknown release "9.9"`},
		{"empty list", []string{"--release", ""}, "an empty list"},
		{"empty element", []string{"--release", "1.21,,1.22"}, "an empty release name"},
		{"a downgrade walk", []string{"--from", "1.23", "--to", "1.22"}, "--from 1.23 --to 1.22"},
		{"a walk of two minors in one hop", []string{"--from", "1.21", "--to", "1.23", "--catalog", "SPARSE"}, "Knative moves one minor per hop"},
	}
	// A catalog without 1.22: its walk from 1.21 to 1.23 is refused.
	sparse := filepath.Join(t.TempDir(), "sparse.yaml")
	full, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	data, err := full.Subset("1.21", "1.23")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sparse, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			args := []string{"bundle", "create", "--mirror", t.TempDir(), "--file", filepath.Join(out, "b.bundle")}
			for _, a := range tt.args {
				if a == "SPARSE" {
					a = sparse
				}
				args = append(args, a)
			}
			_, errOut, err := run(t, args...)
			if code := exitCode(context.Background(), err); code != exitUsage || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("exit code %d, error %v; want %d and %q", code, err, exitUsage, tt.want)
			}
			if strings.Contains(errOut, "[1/") {
				t.Errorf("progress before the refusal: %s", errOut)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("wrote %v", entries)
			}
		})
	}
}
