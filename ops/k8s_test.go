package ops

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"linkway/services/linkway/hub"
)

// k8sDoc is the part of a Kubernetes object the checks read.
type k8sDoc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		// A Service's selector is a plain map; read it from Raw.
		MinAvailable any `yaml:"minAvailable"`
		Template     struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				Containers []k8sContainer `yaml:"containers"`
				Volumes    []struct {
					Name   string `yaml:"name"`
					Secret *struct {
						SecretName string `yaml:"secretName"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Raw        map[string]any    `yaml:"-"`
	File       string            `yaml:"-"`
}

type k8sContainer struct {
	Args []string `yaml:"args"`
	Env  []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
	} `yaml:"httpGet"`
}

// readK8s reads every document of every YAML file in ops/k8s except the
// Helm values.
func readK8s(t *testing.T) []k8sDoc {
	t.Helper()
	files, _ := filepath.Glob("k8s/*.yaml")
	var docs []k8sDoc
	for _, f := range files {
		if filepath.Base(f) == "nats-values.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var node yaml.Node
			if err := dec.Decode(&node); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			var d k8sDoc
			if err := node.Decode(&d); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if err := node.Decode(&d.Raw); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			d.File = filepath.Base(f)
			if d.APIVersion == "" || d.Kind == "" || (d.Metadata.Name == "" && d.Kind != "Kustomization") {
				t.Fatalf("%s: a document without apiVersion, kind or name", f)
			}
			docs = append(docs, d)
		}
	}
	return docs
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// envVarsOfLinkway are the LINKWAY_* variables the command reads
// (services/linkway), so a manifest cannot set one that does nothing.
func envVarsOfLinkway(t *testing.T) map[string]bool {
	t.Helper()
	files, _ := filepath.Glob("../services/linkway/*.go")
	vars := map[string]bool{}
	re := regexp.MustCompile(`"(LINKWAY_[A-Z_]+)"`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			vars[m[1]] = true
		}
	}
	if !vars["LINKWAY_NATS"] {
		t.Fatal("LINKWAY_NATS not found in services/linkway: the scan is broken")
	}
	return vars
}

// TestKubernetesManifests checks the manifests against each other and
// against the code: one Deployment per service Linkway has, running
// `linkway serve <service> --replicas 3` with its probes and resources,
// each with a Service and a PodDisruptionBudget that select its pods,
// Secrets and ConfigMaps that exist, and environment variables the
// command reads.
func TestKubernetesManifests(t *testing.T) {
	docs := readK8s(t)
	linkwayEnv := envVarsOfLinkway(t)
	secrets, configMaps := map[string]map[string]string{}, map[string]map[string]string{}
	var deployments, services, pdbs []k8sDoc
	for _, d := range docs {
		switch d.Kind {
		case "Secret":
			secrets[d.Metadata.Name] = d.StringData
		case "ConfigMap":
			configMaps[d.Metadata.Name] = d.Data
			for k := range d.Data {
				if strings.HasPrefix(k, "LINKWAY_") && !linkwayEnv[k] {
					t.Errorf("ConfigMap %s: %s is not read by linkway", d.Metadata.Name, k)
				}
			}
		case "Deployment":
			deployments = append(deployments, d)
		case "Service":
			services = append(services, d)
		case "PodDisruptionBudget":
			pdbs = append(pdbs, d)
		}
	}
	served := map[string]bool{}
	for _, d := range deployments {
		name := d.Metadata.Name
		pod := d.Spec.Template.Metadata.Labels
		if !subset(d.Spec.Selector.MatchLabels, pod) {
			t.Errorf("%s: selector does not match its pods' labels", name)
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas < 3 {
			t.Errorf("%s: want at least 3 replicas", name)
		}
		if len(d.Spec.Template.Spec.Containers) != 1 {
			t.Fatalf("%s: want one container", name)
		}
		c := d.Spec.Template.Spec.Containers[0]
		if len(c.Args) < 2 || c.Args[0] != "serve" || !slices.Contains(hub.ServiceNames, c.Args[1]) {
			t.Errorf("%s: args %v, want serve <one of %v>", name, c.Args, hub.ServiceNames)
		} else {
			served[c.Args[1]] = true
		}
		if i := slices.Index(c.Args, "--replicas"); i < 0 || i+1 >= len(c.Args) || c.Args[i+1] != "3" {
			t.Errorf("%s: want --replicas 3 (R3 streams and buckets)", name)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: want a readiness probe on /readyz", name)
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: want a liveness probe on /healthz", name)
		}
		for _, r := range []string{"cpu", "memory"} {
			if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
				t.Errorf("%s: want a %s request and limit", name, r)
			}
		}
		env := map[string]bool{}
		for _, e := range c.Env {
			env[e.Name] = true
			if e.Name == "GOMEMLIMIT" {
				checkMemLimit(t, name, e.Value, c.Resources.Limits["memory"])
			}
			if strings.HasPrefix(e.Name, "LINKWAY_") && !linkwayEnv[e.Name] {
				t.Errorf("%s: %s is not read by linkway", name, e.Name)
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref := e.ValueFrom.SecretKeyRef
				if _, ok := secrets[ref.Name][ref.Key]; !ok {
					t.Errorf("%s: %s from Secret %s key %s, which secrets.example.yaml does not define", name, e.Name, ref.Name, ref.Key)
				}
			}
		}
		for _, want := range []string{"LINKWAY_NATS", "LINKWAY_REPLICA_NAME", "LINKWAY_MASTER_KEY", "GOMEMLIMIT"} {
			if !env[want] {
				t.Errorf("%s: no %s", name, want)
			}
		}
		if c.Args[1] == "outcomes" && !env["LINKWAY_PSEUDONYM_KEY"] {
			t.Errorf("%s: outcomes needs LINKWAY_PSEUDONYM_KEY", name)
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil && configMaps[ef.ConfigMapRef.Name] == nil {
				t.Errorf("%s: ConfigMap %s is not defined", name, ef.ConfigMapRef.Name)
			}
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Secret != nil && secrets[v.Secret.SecretName] == nil {
				t.Errorf("%s: Secret %s is not defined", name, v.Secret.SecretName)
			}
		}
		var svc, pdb bool
		for _, s := range services {
			sel, _ := s.Raw["spec"].(map[string]any)["selector"].(map[string]any)
			m := map[string]string{}
			for k, v := range sel {
				m[k], _ = v.(string)
			}
			svc = svc || subset(m, pod)
		}
		for _, p := range pdbs {
			pdb = pdb || (subset(p.Spec.Selector.MatchLabels, pod) && p.Spec.MinAvailable != nil)
		}
		if !svc || !pdb {
			t.Errorf("%s: Service %v, PodDisruptionBudget %v: want both", name, svc, pdb)
		}
	}
	for _, s := range hub.ServiceNames {
		if !served[s] {
			t.Errorf("no Deployment runs linkway serve %s", s)
		}
	}
	// The kustomization applies every manifest except the Secrets' example.
	var k struct {
		Resources []string `yaml:"resources"`
	}
	decodeYAMLStrictLoose(t, "k8s/kustomization.yaml", &k)
	files, _ := filepath.Glob("k8s/*.yaml")
	for _, f := range files {
		base := filepath.Base(f)
		if base == "kustomization.yaml" || base == "secrets.example.yaml" || base == "nats-values.yaml" {
			continue
		}
		if !slices.Contains(k.Resources, base) {
			t.Errorf("kustomization.yaml does not apply %s", base)
		}
	}
	// With kubectl at hand, kustomize renders the whole set.
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		if out, err := exec.Command(kubectl, "kustomize", "k8s").CombinedOutput(); err != nil {
			t.Errorf("kubectl kustomize ops/k8s: %v\n%s", err, out)
		}
	}
}

// checkMemLimit: the Go heap's soft limit (GOMEMLIMIT's syntax) is from 70%
// to 90% of the container's memory limit (Kubernetes' syntax): below it
// enough to leave room for stacks and the runtime, near it enough that
// the collector, not the kernel, keeps the pod within its limit.
func checkMemLimit(t *testing.T, deployment, soft, hard string) {
	t.Helper()
	parse := func(s string, units map[string]float64) (float64, bool) {
		for suffix, mult := range units {
			if n, ok := strings.CutSuffix(s, suffix); ok {
				v, err := strconv.ParseFloat(n, 64)
				return v * mult, err == nil
			}
		}
		return 0, false
	}
	s, ok1 := parse(soft, map[string]float64{"GiB": 1 << 30, "MiB": 1 << 20})
	h, ok2 := parse(hard, map[string]float64{"Gi": 1 << 30, "Mi": 1 << 20})
	if !ok1 || !ok2 {
		t.Errorf("%s: GOMEMLIMIT %q or memory limit %q does not parse", deployment, soft, hard)
		return
	}
	if s < 0.7*h || s > 0.9*h {
		t.Errorf("%s: GOMEMLIMIT %s is %.0f%% of the memory limit %s; want 70-90%%", deployment, soft, 100*s/h, hard)
	}
}

func decodeYAMLStrictLoose(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestNATSHelmValues checks the values for the NATS chart against the
// cluster config: 3 replicas, JetStream on PVCs fsyncing every write, TLS
// for clients and routes, accounts.conf included, and a password variable
// for every user accounts.conf has, no more, no fewer.
func TestNATSHelmValues(t *testing.T) {
	var v struct {
		Config struct {
			Cluster struct {
				Enabled  bool
				Replicas int
				TLS      struct {
					Enabled    bool
					SecretName string         `yaml:"secretName"`
					Merge      map[string]any `yaml:"merge"`
				} `yaml:"tls"`
			}
			Jetstream struct {
				Enabled   bool
				FileStore struct {
					Enabled bool
					PVC     struct {
						Enabled bool
						Size    string
					} `yaml:"pvc"`
				} `yaml:"fileStore"`
				Merge map[string]any `yaml:"merge"`
			}
			NATS struct {
				TLS struct {
					Enabled    bool
					SecretName string `yaml:"secretName"`
				} `yaml:"tls"`
			} `yaml:"nats"`
			Merge map[string]any `yaml:"merge"`
		}
		Container struct {
			Image struct {
				Tag string
			}
			Env map[string]any
		}
		PromExporter struct {
			Enabled bool
		} `yaml:"promExporter"`
	}
	decodeYAMLStrictLoose(t, "k8s/nats-values.yaml", &v)
	c := v.Config
	if !c.Cluster.Enabled || c.Cluster.Replicas != 3 || !c.Cluster.TLS.Enabled || c.Cluster.TLS.Merge["verify"] != true {
		t.Errorf("cluster: want 3 replicas with mutual TLS routes, got %+v", c.Cluster)
	}
	if !c.Jetstream.Enabled || !c.Jetstream.FileStore.Enabled || !c.Jetstream.FileStore.PVC.Enabled || c.Jetstream.FileStore.PVC.Size == "" {
		t.Errorf("jetstream: want file storage on PVCs, got %+v", c.Jetstream)
	}
	if c.Jetstream.Merge["sync_interval"] != "always" {
		t.Errorf("jetstream: sync_interval %v, want always", c.Jetstream.Merge["sync_interval"])
	}
	if !c.NATS.TLS.Enabled || c.NATS.TLS.SecretName == "" {
		t.Error("clients: want TLS")
	}
	if inc, _ := c.Merge["zzz$include"].(string); !strings.HasSuffix(inc, "/accounts.conf") {
		t.Errorf("config.merge does not include accounts.conf: %v", c.Merge)
	}
	if !strings.HasPrefix(v.Container.Image.Tag, "2.15") || !v.PromExporter.Enabled {
		t.Errorf("image %q, exporter %v: want nats 2.15 with the exporter", v.Container.Image.Tag, v.PromExporter.Enabled)
	}
	// The chart merges with sprig's mergeOverwrite, which replaces lists:
	// a list under any merge: would drop the chart's own entries (volumes,
	// mounts). Lists must be added with a JSON patch.
	var raw map[string]any
	decodeYAMLStrictLoose(t, "k8s/nats-values.yaml", &raw)
	var noListsInMerge func(path string, v any, inMerge bool)
	noListsInMerge = func(path string, v any, inMerge bool) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				noListsInMerge(path+"."+k, e, inMerge || k == "merge")
			}
		case []any:
			if inMerge {
				t.Errorf("%s: a list under merge replaces the chart's; use patch", path)
			}
		}
	}
	noListsInMerge("", raw, false)

	want := passwordVars(t)
	var got []string
	for k := range v.Container.Env {
		if strings.HasPrefix(k, "LW_NATS_PASSWORD_") {
			got = append(got, k)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("password variables in nats-values.yaml %v, accounts.conf reads %v", got, want)
	}
}
