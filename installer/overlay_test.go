package installer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/tmbox/tmbox/catalog"
)

// TestOverlayShape covers issue 14 items 2 and 9: an overlay that chooses
// an image, by any field, or moves Istio's namespace is refused before
// anything renders; one that tunes resources is accepted.
func TestOverlayShape(t *testing.T) {
	const head = "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n"
	tests := []struct {
		name, spec, want string
		doc              string // the whole file instead of head+spec
	}{
		{"resources", "spec:\n  components:\n    pilot:\n      k8s:\n        resources: {requests: {cpu: 200m}}\n", "", ""},
		{"namespace istio-system", "spec:\n  namespace: istio-system\n", "", ""},
		{"no spec", "", "", ""},
		{"pilot image", "spec:\n  values:\n    pilot:\n      image: docker.io/evil/pilot:latest\n", "spec.values.pilot.image chooses an image", ""},
		{"hub", "spec:\n  hub: docker.io/evil\n", "spec.hub chooses an image", ""},
		{"tag", "spec:\n  tag: latest\n", "spec.tag chooses an image", ""},
		{"global hub", "spec:\n  values:\n    global: {hub: docker.io/evil}\n", "spec.values.global.hub", ""},
		{"proxy image", "spec:\n  values:\n    global:\n      proxy: {image: evil}\n", "spec.values.global.proxy.image", ""},
		{"component hub", "spec:\n  components:\n    pilot: {hub: docker.io/evil}\n", "spec.components.pilot.hub", ""},
		{"gateway tag", "spec:\n  components:\n    ingressGateways:\n    - name: istio-ingressgateway\n      tag: evil\n", "spec.components.ingressGateways[0].tag", ""},
		{"patch path", "spec:\n  components:\n    pilot:\n      k8s:\n        overlays:\n        - {kind: Deployment, name: istiod, patches: [{path: 'spec.template.spec.containers.[name:discovery].image', value: evil}]}\n", "patches[0].path", ""},
		{"patch value", "spec:\n  components:\n    pilot:\n      k8s:\n        overlays:\n        - {kind: Deployment, name: istiod, patches: [{path: 'spec.template.spec.containers.[name:discovery]', value: {name: discovery, image: evil}}]}\n", "patches[0].value.image", ""},
		{"namespace", "spec:\n  namespace: kube-system\n", `spec.namespace "kube-system"`, ""},
		{"a Deployment", "", "want an IstioOperator", "apiVersion: apps/v1\nkind: Deployment\n"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, want := head+tt.spec, tt.want
			if tt.doc != "" {
				text = tt.doc
			}
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			err := checkOverlayShape(path, []byte(text))
			switch {
			case want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case want != "" && err == nil:
				t.Fatalf("accepted; want an error containing %q", want)
			case want != "" && !strings.Contains(err.Error(), want):
				t.Fatalf("error %q lacks %q", err, want)
			}
		})
	}
}

// TestOverlayLimits: an overlay over the size limit, or one that is a
// named pipe, is refused without being read whole (or at all).
func TestOverlayLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxOverlaySize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readOverlay(big); err == nil || !strings.Contains(err.Error(), "larger than the limit of 1 MiB") {
		t.Fatalf("big overlay: %v", err)
	}
	if _, err := readOverlay(dir); err == nil || !strings.Contains(err.Error(), "a directory") {
		t.Fatalf("directory as overlay: %v", err)
	}
}

// TestCheckPinnedImages is the guard after rendering: any pod template
// image the component does not pin is refused, naming the object.
func TestCheckPinnedImages(t *testing.T) {
	comp := &catalog.Component{Name: catalog.Istio, Version: "1.30.3", Images: []string{"docker.io/istio/pilot:1.30.3", "docker.io/istio/proxyv2:1.30.3"}}
	deploy := func(images ...string) *unstructured.Unstructured {
		var cs []any
		for _, img := range images {
			cs = append(cs, map[string]any{"name": "c", "image": img})
		}
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "istiod", "namespace": "istio-system"},
			"spec":     map[string]any{"template": map[string]any{"spec": map[string]any{"containers": cs}}}}}
		return u
	}
	tests := []struct {
		name string
		objs []*unstructured.Unstructured
		want string
	}{
		{"pins", []*unstructured.Unstructured{deploy("docker.io/istio/pilot:1.30.3"), deploy("docker.io/istio/proxyv2:1.30.3")}, ""},
		{"none", nil, ""},
		{"other image", []*unstructured.Unstructured{deploy("docker.io/istio/pilot:1.30.3", "docker.io/evil/pilot:latest")}, `istio-system/istiod runs "docker.io/evil/pilot:latest"`},
		{"other tag", []*unstructured.Unstructured{deploy("docker.io/istio/pilot:1.30.2")}, "does not pin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkPinnedImages(comp, tt.objs)
			if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// TestOverlayFromState: the kept overlay is rendered only when the user
// gives none and does not reset; a ConfigMap that is gone or whose bytes
// changed is refused, naming it and the flag to give the file again.
func TestOverlayFromState(t *testing.T) {
	const data = "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n"
	good := &istioOverlay{data: []byte(data)}
	keptCM := func(d string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: OverlayConfigMap, Namespace: istioNamespace}, Data: map[string]string{OverlayKey: d}}
	}
	kept := &KeptOverlay{File: "/etc/tmbox/overlay.yaml", SHA256: good.digest()}
	tests := []struct {
		name   string
		state  *KeptOverlay
		user   *istioOverlay
		reset  bool
		objs   []runtime.Object
		want   string // the overlay rendered: "kept", "user" or ""
		errHas string
	}{
		{"nothing kept", nil, nil, false, nil, "", ""},
		{"kept", kept, nil, false, []runtime.Object{keptCM(data)}, "kept", ""},
		{"the user's wins", kept, &istioOverlay{file: "new.yaml", data: []byte(data)}, false, []runtime.Object{keptCM(data)}, "user", ""},
		{"reset drops it", kept, nil, true, []runtime.Object{keptCM(data)}, "", ""},
		{"ConfigMap gone", kept, nil, false, nil, "", "ConfigMap istio-system/tmbox-istio-overlay is gone: give --istio-overlay /etc/tmbox/overlay.yaml again"},
		{"bytes changed", kept, nil, false, []runtime.Object{keptCM(data + "spec: {}\n")}, "", "was changed since tmbox wrote it"},
		{"no longer an overlay", &KeptOverlay{File: "o.yaml", SHA256: (&istioOverlay{data: []byte("kind: Deployment\n")}).digest()}, nil, false, []runtime.Object{keptCM("kind: Deployment\n")}, "", "want an IstioOperator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recordingReporter{}
			r := &resolved{opts: Options{ResetPlatform: tt.reset, Reporter: rec}.withDefaults()}
			r.render.istioOverlay = tt.user
			e := newEnv(r)
			e.client = fake.NewClientset(tt.objs...)
			e.state = &State{Release: "1.23", IstioOverlay: tt.state}
			err := e.overlayFromState(context.Background())
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err %v, want one containing %q", err, tt.errHas)
				}
				if e.render.istioOverlay != nil {
					t.Errorf("renders overlay %+v after an error", e.render.istioOverlay)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			switch ov := e.render.istioOverlay; {
			case ov == tt.user && ov != nil:
				got = "user"
			case ov != nil && ov.kept && string(ov.data) == data && ov.file == kept.File:
				got = "kept"
			case ov != nil:
				t.Fatalf("unexpected overlay %+v", ov)
			}
			if got != tt.want {
				t.Errorf("renders %q, want %q", got, tt.want)
			}
			if said := len(rec.events) == 1 && strings.Contains(rec.events[0].Message, "kept from the installed release 1.23"); said != (got == "kept") {
				t.Errorf("events %+v", rec.events)
			}
		})
	}
}
