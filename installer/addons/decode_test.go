package addons

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// addonsNode parses an InstallConfig document and returns its addons:
// node (nil when absent).
func addonsNode(t testing.TB, doc string) *yaml.Node {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatalf("parse: %v", err)
	}
	if len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "addons" {
			return m.Content[i+1]
		}
	}
	return nil
}

// dedent removes the tabs that indent a test's YAML.
func dedent(s string) string {
	lines := strings.Split(strings.TrimPrefix(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, "\t")
	}
	return strings.Join(lines, "\n")
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }

func TestDecodeFull(t *testing.T) {
	doc := dedent(`
		apiVersion: tmbox.dev/v1alpha1
		kind: InstallConfig
		addons:
		- name: tenant-gateway
		  chart: charts/gateway-1.0.0.tgz
		  version: 1.0.0
		  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
		  namespace: tenant
		  valuesFiles: [values/base.yaml, values/tenant.yaml]
		  values:
		    replicaCount: 2
		    service: {type: ClusterIP}
		    labels: &labels
		      team: blue
		    podLabels: *labels
		    when: 2024-01-02
		    ports: [80, 443]
		    ratio: 0.5
		    enabled: true
		    nothing: null
		  wait: false
		  timeout: 90s
		- name: redis
		  chart: oci://registry.example.com/charts/redis
		  version: 19.0.1
		  namespace: data`)
	got, err := Decode(addonsNode(t, doc), "cfg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []Addon{{
		Name:        "tenant-gateway",
		Chart:       "charts/gateway-1.0.0.tgz",
		Version:     "1.0.0",
		Digest:      "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		Namespace:   "tenant",
		ValuesFiles: []string{"values/base.yaml", "values/tenant.yaml"},
		Values: map[string]any{
			"replicaCount": 2,
			"service":      map[string]any{"type": "ClusterIP"},
			"labels":       map[string]any{"team": "blue"},
			"podLabels":    map[string]any{"team": "blue"},
			"when":         "2024-01-02",
			"ports":        []any{80, 443},
			"ratio":        0.5,
			"enabled":      true,
			"nothing":      nil,
		},
		Wait:    ptr(false),
		Timeout: Duration(90 * time.Second),
	}, {
		Name:      "redis",
		Chart:     "oci://registry.example.com/charts/redis",
		Version:   "19.0.1",
		Namespace: "data",
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%#v\nwant\n%#v", got, want)
	}
	if got[0].WaitEnabled() || !got[1].WaitEnabled() {
		t.Error("WaitEnabled: want false for wait: false, true when unset")
	}
	if got[0].Budget() != 90*time.Second || got[1].Budget() != DefaultTimeout {
		t.Errorf("Budget: got %s and %s", got[0].Budget(), got[1].Budget())
	}
}

func TestDecodeEmpty(t *testing.T) {
	tests := []struct {
		name string
		doc  string
	}{
		{"absent", "kind: InstallConfig\n"},
		{"null", "addons:\n"},
		{"empty list", "addons: []\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(addonsNode(t, tt.doc), "cfg.yaml")
			if err != nil || len(got) != 0 {
				t.Errorf("got %v, %v; want no add-ons and no error", got, err)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	const ok = `
		  chart: ./chart
		  namespace: tenant`
	tests := []struct {
		name string
		yaml string
		want []string // each error, in order, as a substring
	}{
		{"addons not a list", `
			addons: {name: a}`,
			[]string{`cfg.yaml:1: addons: want a list of add-ons, not a mapping`}},
		{"entry not a mapping", `
			addons:
			- tenant-gateway`,
			[]string{`cfg.yaml:2: addons[0]: want a mapping (name, chart, namespace, …), not "tenant-gateway"`}},
		{"unknown key", `
			addons:
			- name: a` + ok + `
			  valueFiles: [x.yaml]`,
			[]string{`cfg.yaml:5: addons[0].valueFiles: unknown key "valueFiles" (known at addons[0]: chart, digest, name, namespace, timeout, values, valuesFiles, version, wait)`}},
		{"key set twice", `
			addons:
			- name: a` + ok + `
			  name: b`,
			[]string{`cfg.yaml:5: addons[0].name: set twice (first at line 2)`}},
		{"value key set twice", `
			addons:
			- name: a` + ok + `
			  values:
			    service:
			      type: ClusterIP
			      type: NodePort`,
			[]string{`cfg.yaml:8: addons[0].values.service.type: set twice (first at line 7)`}},
		{"merge key in values", `
			addons:
			- name: a` + ok + `
			  values:
			    base: &b {x: 1}
			    other:
			      <<: *b`,
			[]string{`cfg.yaml:8: addons[0].values.other: merge keys (<<) are not supported`}},
		{"list as a name", `
			addons:
			- name: [a]` + ok,
			[]string{`cfg.yaml:2: addons[0].name: want a text value, not a list`}},
		{"text as wait", `
			addons:
			- name: a` + ok + `
			  wait: "yes"`,
			[]string{`cfg.yaml:5: addons[0].wait: want true or false, not "yes"`}},
		{"duration without unit", `
			addons:
			- name: a` + ok + `
			  timeout: 300`,
			[]string{`cfg.yaml:5: addons[0].timeout: "300" has no unit: want a duration such as 90s or 5m`}},
		{"not a duration", `
			addons:
			- name: a` + ok + `
			  timeout: soon`,
			[]string{`cfg.yaml:5: addons[0].timeout: "soon" is not a duration`}},
		{"zero duration", `
			addons:
			- name: a` + ok + `
			  timeout: 0s`,
			[]string{`cfg.yaml:5: addons[0].timeout: "0s": want a positive duration`}},
		{"values as a list", `
			addons:
			- name: a` + ok + `
			  values: [a]`,
			[]string{`cfg.yaml:5: addons[0].values: want a mapping of chart values, not a list`}},
		{"valuesFiles as text", `
			addons:
			- name: a` + ok + `
			  valuesFiles: base.yaml`,
			[]string{`cfg.yaml:5: addons[0].valuesFiles: want a list of file paths, not "base.yaml"`}},
		{"null values file", `
			addons:
			- name: a` + ok + `
			  valuesFiles:
			  - base.yaml
			  -`,
			[]string{`cfg.yaml:7: addons[0].valuesFiles[1]: no value: want a file path`}},
		{"duplicate names", `
			addons:
			- name: a` + ok + `
			- name: b` + ok + `
			- name: a` + ok,
			[]string{`cfg.yaml:8: addons[2].name: "a" is also the name of addons[0]: add-on names must be unique`}},
		{"bad namespace", `
			addons:
			- name: a
			  chart: ./chart
			  namespace: Tenant_1`,
			[]string{`cfg.yaml:4: addons[0].namespace: "Tenant_1" is not a namespace name`}},
		{"missing namespace and chart", `
			addons:
			- name: a`,
			[]string{
				`cfg.yaml:2: addons[0].namespace: missing`,
				`cfg.yaml:2: addons[0].chart: missing`,
			}},
		{"bad name", `
			addons:
			- name: Tenant.Gateway` + ok,
			[]string{`cfg.yaml:2: addons[0].name: "Tenant.Gateway" is not a valid release name`}},
		{"name too long for Helm", `
			addons:
			- name: a-very-long-release-name-that-helm-would-refuse-to-store` + ok,
			[]string{`cfg.yaml:2: addons[0].name: "a-very-long-release-name-that-helm-would-refuse-to-store" is not a valid release name: at most 53 characters`}},
		{"oci without version", `
			addons:
			- name: redis
			  chart: oci://registry.example.com/charts/redis
			  namespace: data`,
			[]string{`cfg.yaml:2: addons[0].version: missing: an oci:// chart needs the version to pull (its tag)`}},
		{"oci with a tag", `
			addons:
			- name: redis
			  chart: oci://registry.example.com/charts/redis:19.0.1
			  version: 19.0.1
			  namespace: data`,
			[]string{`cfg.yaml:3: addons[0].chart: "oci://registry.example.com/charts/redis:19.0.1": leave the tag or digest out of the reference`}},
		{"oci without repository", `
			addons:
			- name: redis
			  chart: oci://registry.example.com
			  version: 19.0.1
			  namespace: data`,
			[]string{`cfg.yaml:3: addons[0].chart: "oci://registry.example.com": want oci://REGISTRY/REPOSITORY/CHART`}},
		{"bad digest", `
			addons:
			- name: a` + ok + `
			  digest: sha256:ABC`,
			[]string{`cfg.yaml:5: addons[0].digest: "sha256:ABC" is not a digest: want sha256: and 64 lowercase hex digits`}},
		{"bad version", `
			addons:
			- name: a` + ok + `
			  version: "1.0 beta"`,
			[]string{`cfg.yaml:5: addons[0].version: "1.0 beta" is not a chart version`}},
		{"several errors in file order", `
			addons:
			- name: a
			  chart: ./chart
			  namespace: Bad
			  timeout: 1x
			- name: a` + ok,
			[]string{
				`cfg.yaml:5: addons[0].timeout`,
			}},
		{"validation errors in file order", `
			addons:
			- name: a
			  namespace: Bad
			  chart: ./chart
			- name: a` + ok,
			[]string{
				`cfg.yaml:3: addons[0].namespace`,
				`cfg.yaml:5: addons[1].name`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(addonsNode(t, dedent(tt.yaml)), "cfg.yaml")
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			errs := Errors(err)
			if len(errs) != len(tt.want) {
				t.Fatalf("%d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tt.want[i]) {
					t.Errorf("error %d:\n  %s\nwant it to contain\n  %s", i, e, tt.want[i])
				}
				if e.Line == 0 || e.File != "cfg.yaml" {
					t.Errorf("error %d has no file and line: %+v", i, e)
				}
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := Addon{Name: "a", Chart: "./chart", Namespace: "tenant"}
	tests := []struct {
		name string
		mut  func(*Addon)
		want string // "" for valid
	}{
		{"valid", func(*Addon) {}, ""},
		{"valid oci", func(a *Addon) { a.Chart, a.Version = "oci://registry.example.com:5000/charts/redis", "19.0.1+build.1" }, ""},
		{"negative timeout", func(a *Addon) { a.Timeout = Duration(-time.Second) }, "addons[0].timeout: -1s: want a positive duration"},
		{"empty values file", func(a *Addon) { a.ValuesFiles = []string{""} }, "addons[0].valuesFiles[0]: empty file path"},
		{"values Helm cannot store", func(a *Addon) { a.Values = map[string]any{"f": func() {}} }, "addons[0].values: Helm cannot store these values"},
		{"chart repository URL", func(a *Addon) { a.Chart = "https://charts.example.com/redis-1.0.0.tgz" }, `addons[0].chart: "https://charts.example.com/redis-1.0.0.tgz": tmbox takes a local chart`},
		{"bad oci registry", func(a *Addon) { a.Chart, a.Version = "oci://-bad-/charts/redis", "1.0.0" }, `addons[0].chart: "oci://-bad-/charts/redis"`},
		{"uppercase oci repository", func(a *Addon) { a.Chart, a.Version = "oci://registry.example.com/Charts/redis", "1.0.0" }, `"Charts" is not a repository path component`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := good
			tt.mut(&a)
			before, _ := json.Marshal(a)
			err := Validate([]Addon{a})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Line != 0 || e.File != "" {
				t.Errorf("want an *Error without file and line, got %#v", err)
			}
			if after, _ := json.Marshal(a); string(before) != string(after) {
				t.Error("Validate changed the add-on")
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	cause := errors.New("boom")
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "cfg.yaml", Line: 3, Path: "addons[0].chart", Err: cause}, "cfg.yaml:3: addons[0].chart: boom"},
		{Error{File: "cfg.yaml", Path: "addons[0].chart", Err: cause}, "cfg.yaml: addons[0].chart: boom"},
		{Error{Path: "addons[0].chart", Err: cause}, "addons[0].chart: boom"},
		{Error{Path: "addons[0]"}, "addons[0]: invalid"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
		if tt.e.Err != nil && !errors.Is(&tt.e, cause) {
			t.Errorf("%q does not unwrap to its cause", tt.want)
		}
	}
}

func TestLocate(t *testing.T) {
	node := addonsNode(t, dedent(`
		addons:
		- name: a
		  chart: ./a
		  namespace: x
		- name: b
		  namespace: y
		  chart: ./b`))
	err := errors.Join(
		&Error{Path: "addons[1].chart", Err: errors.New("no such chart")},
		&Error{Path: "addons[0].valuesFiles[0]", Err: errors.New("no such file")},
		errors.New("other"),
	)
	got := Errors(Locate(err, node, "cfg.yaml"))
	want := []string{
		"cfg.yaml:2: addons[0].valuesFiles[0]: no such file", // the add-on's line: valuesFiles is not written
		"cfg.yaml:7: addons[1].chart: no such chart",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].Error() != want[i] {
			t.Errorf("got %q, want %q", got[i], want[i])
		}
	}
	if Locate(nil, node, "cfg.yaml") != nil {
		t.Error("Locate(nil) is not nil")
	}
}

func TestDurationEncoding(t *testing.T) {
	tests := []struct {
		in   string
		want Duration
		err  string
	}{
		{`"90s"`, Duration(90 * time.Second), ""},
		{`"1h2m"`, Duration(time.Hour + 2*time.Minute), ""},
		{`90`, 0, "want a duration string"},
		{`"soon"`, 0, `"soon" is not a duration`},
	}
	for _, tt := range tests {
		var d Duration
		err := json.Unmarshal([]byte(tt.in), &d)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: got %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || d != tt.want {
			t.Errorf("%s: got %v, %v; want %v", tt.in, d, err, tt.want)
		}
		out, _ := json.Marshal(d)
		var back Duration
		if err := json.Unmarshal(out, &back); err != nil || back != d {
			t.Errorf("%s: round trip through %s gave %v, %v", tt.in, out, back, err)
		}
	}
	a := Addon{Name: "a", Chart: "c", Namespace: "n", Timeout: Duration(90 * time.Second)}
	y, err := yaml.Marshal(a)
	if err != nil || !strings.Contains(string(y), "timeout: 1m30s") {
		t.Fatalf("YAML: %s, %v", y, err)
	}
	var back Addon
	if err := yaml.Unmarshal(y, &back); err != nil || back.Timeout != a.Timeout {
		t.Errorf("YAML round trip: %v, %v", back.Timeout, err)
	}
	if y, _ := yaml.Marshal(Addon{Name: "a"}); strings.Contains(string(y), "timeout") {
		t.Errorf("an unset timeout is written: %s", y)
	}
}
