package addons

import (
	"context"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
)

func TestUnchanged(t *testing.T) {
	loaded, err := Load(context.Background(), []Addon{{Name: "demo", Chart: demoDir, Namespace: "tenant", Values: map[string]any{"replicas": 2}}}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := loaded[0]
	same := func() *release.Release {
		return &release.Release{
			Chart:  &chart.Chart{Metadata: &chart.Metadata{Name: "demo", Version: "0.3.1"}},
			Config: map[string]any{"replicas": 2.0}, // as Helm reads it back from JSON
			Labels: map[string]string{"name": "demo", "owner": "helm", LabelManagedBy: ManagedByValue, LabelChartDigest: digestLabel(l.ChartDigest)},
		}
	}
	rewrite := imageRewrite{"registry.example.com/demo/server:1.4.0": "reg.local/m/demo/server:1.4.0@sha256:" + strings.Repeat("1", 64)}
	tests := []struct {
		name    string
		mut     func(*release.Release)
		rewrite imageRewrite
		want    bool
	}{
		{"same", func(*release.Release) {}, nil, true},
		{"same image mapping", func(r *release.Release) { r.Labels[LabelImageMap] = rewrite.label() }, rewrite, true},
		{"images mapped now", func(*release.Release) {}, rewrite, false},
		{"images no longer mapped", func(r *release.Release) { r.Labels[LabelImageMap] = rewrite.label() }, nil, false},
		{"another image mapping", func(r *release.Release) {
			r.Labels[LabelImageMap] = imageRewrite{"registry.example.com/demo/server:1.4.0": "other.local/demo/server:1.4.0@sha256:" + strings.Repeat("1", 64)}.label()
		}, rewrite, false},
		{"other values", func(r *release.Release) { r.Config = map[string]any{"replicas": 3} }, nil, false},
		{"no values", func(r *release.Release) { r.Config = nil }, nil, false},
		{"other chart version", func(r *release.Release) { r.Chart.Metadata.Version = "0.3.0" }, nil, false},
		{"other chart name", func(r *release.Release) { r.Chart.Metadata.Name = "other" }, nil, false},
		{"other digest", func(r *release.Release) { r.Labels[LabelChartDigest] = strings.Repeat("0", 63) }, nil, false},
		{"not tmbox's", func(r *release.Release) { delete(r.Labels, LabelManagedBy) }, nil, false},
		{"no chart", func(r *release.Release) { r.Chart = nil }, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := same()
			tt.mut(r)
			if got := unchanged(r, l, tt.rewrite); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDigestLabel(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	if got := digestLabel(d); got != strings.Repeat("ab", 32)[:63] {
		t.Errorf("got %q", got)
	}
	labels := releaseLabels(&Loaded{ChartDigest: d}, nil)
	if got := len(labels[LabelChartDigest]); got != 63 {
		t.Errorf("label value of %d characters", got)
	}
	if _, ok := labels[LabelImageMap]; ok {
		t.Errorf("an image-map label without a mapping: %v", labels)
	}
	if got := len(releaseLabels(&Loaded{ChartDigest: d}, imageRewrite{"a:1": "b/a:1@sha256:" + strings.Repeat("0", 64)})[LabelImageMap]); got != 63 {
		t.Errorf("image-map label value of %d characters", got)
	}
}

func TestRecoverableStatuses(t *testing.T) {
	tests := []struct {
		s    release.Status
		want bool
	}{
		{release.StatusPendingInstall, true},
		{release.StatusPendingUpgrade, true},
		{release.StatusPendingRollback, true},
		{release.StatusUninstalling, true},
		{release.StatusDeployed, false},
		{release.StatusFailed, false},
		{release.StatusSuperseded, false},
		{release.StatusUninstalled, false},
	}
	for _, tt := range tests {
		if got := stuck(tt.s); got != tt.want {
			t.Errorf("%s: got %v", tt.s, got)
		}
	}
}
