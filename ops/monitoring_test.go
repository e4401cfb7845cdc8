package ops

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// linkwayMetrics are the linkway_* metric names registered in the Go
// source of the services: every `Name: "linkway_..."` in services/.
func linkwayMetrics(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`Name:\s*"(linkway_[a-z0-9_]+)"`)
	names := map[string]bool{}
	err := filepath.WalkDir("../services", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, core := range []string{"linkway_appends_total", "linkway_reader_lag_events", "linkway_http_requests_total"} {
		if !names[core] {
			t.Fatalf("metric %s not found in services/: the scan is broken", core)
		}
	}
	return names
}

// externalMetrics are the metrics the rules and dashboard use that other
// programs export, with where each comes from.
var externalMetrics = map[string]string{
	"up": "Prometheus, per scrape target",
	"kube_deployment_status_replicas_available": "kube-state-metrics",
	"kube_deployment_spec_replicas":             "kube-state-metrics",
	// prometheus-nats-exporter run by the NATS Helm chart with -prefix=nats
	// (collector/jsz.go: <prefix>_consumer_num_pending, ...; varz fields as
	// <prefix>_varz_<field>).
	"nats_consumer_num_pending":              "NATS exporter -jsz",
	"nats_consumer_num_redelivered":          "NATS exporter -jsz",
	"nats_consumer_num_ack_pending":          "NATS exporter -jsz",
	"nats_server_jetstream_disabled":         "NATS exporter -jsz",
	"nats_varz_routes":                       "NATS exporter -varz",
	"nats_varz_slow_consumers":               "NATS exporter -varz",
	"nats_varz_jetstream_stats_storage":      "NATS exporter -varz",
	"nats_varz_jetstream_config_max_storage": "NATS exporter -varz",
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers  = regexp.MustCompile(`\{[^{}]*\}|\[[^\[\]]*\]`)
	promLabelList = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords  = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
		"group_right": true, "bool": true, "and": true, "or": true, "unless": true, "offset": true, "inf": true, "nan": true}
)

// metricNames returns the metric names a PromQL expression selects: what
// is left after removing strings, label matchers, ranges, grouping label
// lists, function names (followed by '(') and keywords. It fails on
// unbalanced brackets, the commonest slip in a hand-written expression.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	depth := map[rune]int{}
	for _, r := range promStrings.ReplaceAllString(expr, `""`) {
		switch r {
		case '(', '{', '[':
			depth[r]++
		case ')':
			depth['(']--
		case '}':
			depth['{']--
		case ']':
			depth['[']--
		}
		for _, d := range depth {
			if d < 0 {
				t.Fatalf("unbalanced brackets in %q", expr)
			}
		}
	}
	for _, d := range depth {
		if d != 0 {
			t.Fatalf("unbalanced brackets in %q", expr)
		}
	}
	s := promStrings.ReplaceAllString(expr, " ")
	s = promMatchers.ReplaceAllString(s, " ")
	s = promLabelList.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		rest := strings.TrimLeft(s[loc[1]:], " \t\n")
		if promKeywords[strings.ToLower(name)] || strings.HasPrefix(rest, "(") {
			continue
		}
		if loc[0] > 0 && (s[loc[0]-1] == '$' || (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9')) {
			continue // a Grafana variable or a number's unit
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		t.Fatalf("no metric in %q", expr)
	}
	return names
}

// checkMetrics fails for every metric expr uses that does not exist.
func checkMetrics(t *testing.T, where, expr string, linkway map[string]bool) {
	t.Helper()
	for _, name := range metricNames(t, expr) {
		if strings.HasPrefix(name, "linkway_") {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && linkway[b] {
					base = b
				}
			}
			if !linkway[base] {
				t.Errorf("%s: %s is not a metric of any service (Name: \"linkway_...\" in services/)", where, name)
			}
		} else if _, ok := externalMetrics[name]; !ok {
			t.Errorf("%s: %s is neither a linkway_ metric nor a known external one", where, name)
		}
	}
}

// runbookAnchors are the GitHub anchors of RUNBOOK.md's headings.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("RUNBOOK.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			h = strings.TrimLeft(h, "#")
			a := drop.ReplaceAllString(strings.ToLower(strings.TrimSpace(h)), "")
			anchors[strings.ReplaceAll(a, " ", "-")] = true
		}
	}
	return anchors
}

func decodeYAMLStrict(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestPrometheusRules checks the alert rules: the file is Prometheus's rule
// format (no unknown fields), every rule is complete, every expression
// uses existing metrics, and every runbook section exists.
func TestPrometheusRules(t *testing.T) {
	var rf ruleFile
	decodeYAMLStrict(t, "prometheus/linkway-rules.yml", &rf)
	linkway := linkwayMetrics(t)
	anchors := runbookAnchors(t)
	if len(rf.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	groups, alerts := map[string]bool{}, 0
	for _, g := range rf.Groups {
		if g.Name == "" || groups[g.Name] || len(g.Rules) == 0 {
			t.Errorf("group %q: want a unique name and rules", g.Name)
		}
		groups[g.Name] = true
		for _, r := range g.Rules {
			where := g.Name + "/" + r.Alert
			if r.Alert == "" || r.Record != "" {
				t.Errorf("%s: want an alert rule", where)
			}
			if _, err := time.ParseDuration(r.For); err != nil {
				t.Errorf("%s: for %q: %v", where, r.For, err)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", where, s)
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", where, a)
				}
			}
			if anchor, ok := strings.CutPrefix(r.Annotations["runbook"], "RUNBOOK.md#"); !ok || !anchors[anchor] {
				t.Errorf("%s: runbook %q is not a section of RUNBOOK.md", where, r.Annotations["runbook"])
			}
			checkMetrics(t, where, r.Expr, linkway)
			alerts++
		}
	}
	// The alerts the brief asks for, by what they watch.
	for _, want := range []string{"linkway_reader_lag_seconds", "linkway_reader_lag_events", `result="error"`,
		"linkway_append_conflicts_total", "nats_consumer_num_redelivered", "nats_varz_routes", `code=~"5.."`,
		"kube_deployment_status_replicas_available"} {
		found := false
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				found = found || strings.Contains(r.Expr, want)
			}
		}
		if !found {
			t.Errorf("no alert watches %s", want)
		}
	}
	t.Logf("%d alerts in %d groups", alerts, len(rf.Groups))
}

// TestPrometheusConfig checks the scrape config's shape and that the rule
// files it names are here.
func TestPrometheusConfig(t *testing.T) {
	var cfg struct {
		Global        map[string]any   `yaml:"global"`
		RuleFiles     []string         `yaml:"rule_files"`
		Alerting      map[string]any   `yaml:"alerting"`
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	decodeYAMLStrict(t, "prometheus/prometheus.yml", &cfg)
	for _, f := range cfg.RuleFiles {
		if _, err := os.Stat(filepath.Join("prometheus", f)); err != nil {
			t.Errorf("rule file %s: %v", f, err)
		}
	}
	var jobs []string
	for _, sc := range cfg.ScrapeConfigs {
		name, _ := sc["job_name"].(string)
		if slices.Contains(jobs, name) || name == "" {
			t.Errorf("job %q: want a unique name", name)
		}
		jobs = append(jobs, name)
	}
	for _, want := range []string{"linkway", "nats", "kube-state-metrics"} {
		if !slices.Contains(jobs, want) {
			t.Errorf("no scrape job %s (the rules use its metrics)", want)
		}
	}
}

type grafanaPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

// TestGrafanaDashboard loads the dashboard and checks that every panel's
// queries, and the variables', use existing metrics.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/linkway.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string         `json:"uid"`
		Title      string         `json:"title"`
		Panels     []grafanaPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" {
		t.Fatal("dashboard without uid or title")
	}
	linkway := linkwayMetrics(t)
	ids := map[int]bool{}
	queries := 0
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if ids[p.ID] || p.GridPos == nil {
				t.Errorf("panel %q: want a unique id and a position", p.Title)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				checkMetrics(t, "panel "+p.Title, tg.Expr, linkway)
				queries++
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			q := strings.TrimSuffix(strings.TrimPrefix(v.Definition, "label_values("), ")")
			name, _, _ := strings.Cut(q, ",")
			checkMetrics(t, "variable "+v.Name, name, linkway)
		}
	}
	// The panels the brief asks for, by what they show.
	for _, want := range []string{"linkway_appends_total", "linkway_append_duration_seconds_bucket",
		"linkway_append_conflicts_total", "linkway_reader_lag_events", "linkway_reader_lag_seconds",
		"linkway_http_requests_total", "linkway_http_request_duration_seconds_bucket"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("no panel shows %s", want)
		}
	}
	t.Logf("%d panels, %d queries", len(ids), queries)
}

// TestMetricNamesExtraction keeps metricNames honest.
func TestMetricNamesExtraction(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (result) (rate(linkway_appends_total{result="error", service=~"$service"}[$__rate_interval]))`: {"linkway_appends_total"},
		`histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) > 0.5`:                                     {"a_bucket"},
		`x and on (projection) sum without (pod) (y) == 0`:                                                     {"x", "y"},
		`(count(nats_varz_routes) or vector(0)) < 3`:                                                           {"nats_varz_routes"},
		`a / b > 1e3`: {"a", "b"},
	} {
		if got := metricNames(t, expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %v, want %v", expr, got, want)
		}
	}
}
