package addons

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

func TestImages(t *testing.T) {
	tgz, _ := packageChart(t, demoDir)
	tests := []struct {
		name  string
		addon Addon
		want  []string
	}{
		{"defaults", Addon{Name: "demo", Chart: demoDir, Namespace: "tenant"}, []string{
			"registry.example.com/demo/cleanup:1.0",
			"registry.example.com/demo/init@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			"registry.example.com/demo/migrate:1.4.0",
			"registry.example.com/demo/server:1.4.0",
			"registry.example.com/demo/sidecar:2.0",
		}},
		{"values change the images", Addon{Name: "demo", Chart: tgz, Namespace: "tenant", Values: map[string]any{
			"image":   map[string]any{"repository": "mirror.local/server", "tag": "9"},
			"sidecar": map[string]any{"enabled": false},
			"cleanup": map[string]any{"image": "mirror.local/demo/server:9"},
		}}, []string{
			"mirror.local/demo/server:9",
			"mirror.local/server:9",
			"registry.example.com/demo/init@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			"registry.example.com/demo/migrate:1.4.0",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loaded, err := Load(context.Background(), []Addon{tt.addon}, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := Images(loaded[0], "")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestRenderNamespace(t *testing.T) {
	loaded, err := Load(context.Background(), []Addon{{Name: "demo", Chart: demoDir, Namespace: "tenant"}}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	manifest, hooks, err := Render(loaded[0], "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(manifest, "kind: Deployment") || !strings.Contains(manifest, "name: demo-config") {
		t.Errorf("manifest misses the chart's objects:\n%s", manifest)
	}
	if len(hooks) != 1 || !strings.Contains(hooks[0], "name: demo-migrate") {
		t.Errorf("hooks: %q", hooks)
	}
	// Rendering twice gives the same output: the chart is not changed.
	again, _, err := Render(loaded[0], "")
	if err != nil || again != manifest {
		t.Errorf("second render differs (%v)", err)
	}
}

// TestImagesGatewayChart renders a real chart nobody here wrote: Istio's
// gateway chart leaves its proxy image to istiod's injection webhook
// ("auto", not an image), and takes init containers from its values.
func TestImagesGatewayChart(t *testing.T) {
	chart := gatewayChart(t)
	tests := []struct {
		name   string
		values map[string]any
		want   []string
	}{
		{"defaults: only the injected proxy", nil, []string{}},
		{"an init container from the values", map[string]any{"initContainers": []any{
			map[string]any{"name": "wait", "image": "registry.example.com/tenant/wait:1.0"},
		}}, []string{"registry.example.com/tenant/wait:1.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loaded, err := Load(context.Background(), []Addon{{Name: "tenant-gateway", Chart: chart, Namespace: "tenant", Values: tt.values}}, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := Images(loaded[0], "")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
