package config

//go:generate go run ../internal/fielddoc/gen -root .. -out fielddoc_gen.go

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/chatplat/job-service/job"
)

// Key is one key of the file as the reference lists it: its path, its type, its default and
// what it means, all read from the config structs (the meaning from the field's doc comment).
type Key struct {
	// Path is the key's place in the file: "redis.addr", "jobs.<kind>.schedule",
	// "handlers.partition_archive.tables[].table".
	Path    string
	Type    string
	Default string
	Meaning string
	// Deprecated, when set, is what to write instead (the struct tag `deprecated:"..."`): the
	// key still loads for one release, with a warning saying so.
	Deprecated string
	// value says how an environment variable sets the key: scalar, a comma-separated list, or
	// YAML (maps and lists of sections); "" means no variable can (fields of list elements).
	value  string
	goType reflect.Type
}

// Env is the environment variable that sets the key: JOBSERVICE_ and the path upper-cased,
// its levels joined by a double underscore (redis.addr: JOBSERVICE_REDIS__ADDR). Keys inside
// list elements have none (set the whole list).
func (k Key) Env() string {
	if k.value == "" || strings.Contains(k.Path, "<") {
		return ""
	}
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(k.Path, ".", "__"))
}

// EnvPrefix starts every environment variable the config reads.
const EnvPrefix = "JOBSERVICE_"

const (
	valueScalar = "scalar"
	valueList   = "list"
	valueYAML   = "yaml"
)

// kindPlaceholder stands for a job kind in the reference's paths.
const kindPlaceholder = "<kind>"

// sectionDefaulter is a job definition that can show its section's defaults (job.Def).
type sectionDefaulter interface{ SectionDefaults() any }

// Keys lists every key of the file: the sections of Config, jobs.<kind> for each kind, and
// each kind's handlers.<kind> section. With expand false, jobs.<kind> is listed once, with
// "<kind>" in its path.
func Keys(kinds []job.Definition, expand bool) []Key {
	defaults := Config{Node: "<hostname>-<pid>"}.WithDefaults()
	var out []Key
	walk("", reflect.ValueOf(defaults), &out)
	var jobs []Key
	spec := job.Spec{TimeZone: "(time_zone)"}.WithDefaults()
	if expand {
		for _, k := range kinds {
			walk("jobs."+k.Kind(), reflect.ValueOf(spec), &jobs)
		}
	} else {
		walk("jobs."+kindPlaceholder, reflect.ValueOf(spec), &jobs)
	}
	out = append(out, jobs...)
	for _, k := range kinds {
		d, ok := k.(sectionDefaulter)
		if !ok {
			continue
		}
		walk("handlers."+k.Kind(), reflect.ValueOf(d.SectionDefaults()), &out)
	}
	return out
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	nodeType     = reflect.TypeOf(yaml.Node{})
)

// walk appends the keys of v (a struct) under prefix.
func walk(prefix string, v reflect.Value, out *[]Key) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		fv := v.Field(i)
		if opts == "inline" {
			walk(prefix, fv, out)
			continue
		}
		if name == "" {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		ft := f.Type
		if ft.Kind() == reflect.Map && (ft.Elem() == nodeType || ft.Elem().Kind() == reflect.Struct) {
			continue // jobs and handlers: listed per kind by Keys
		}
		k := Key{Path: path, Meaning: fieldDocs[t.PkgPath()+"."+t.Name()+"."+f.Name],
			Deprecated: f.Tag.Get("deprecated"), goType: ft}
		if k.Meaning == "" {
			k.Meaning = nameMeaning(prefix, name)
		}
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
			if fv.IsNil() {
				fv = reflect.Value{}
			} else {
				fv = fv.Elem()
			}
		}
		switch {
		case ft.Kind() == reflect.Struct:
			walk(path, orZero(fv, ft), out)
			continue
		case ft.Kind() == reflect.Slice && elemStruct(ft):
			k.Type, k.value = "list of sections", valueYAML
			k.Default = formatDefault(fv)
			*out = append(*out, k)
			et := ft.Elem()
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			var elems []Key
			walk(path+"[]", reflect.New(et).Elem(), &elems)
			for _, e := range elems {
				e.Default, e.value = "", ""
				*out = append(*out, e)
			}
			continue
		case ft.Kind() == reflect.Slice:
			k.Type, k.value = "list of "+typeName(ft.Elem()), valueList
		case ft.Kind() == reflect.Map || ft.Kind() == reflect.Interface:
			k.Type, k.value = "map", valueYAML
		default:
			k.Type, k.value = typeName(ft), valueScalar
		}
		k.Default = formatDefault(fv)
		*out = append(*out, k)
	}
}

// nameMeaning says what an undocumented key of a table mapping means from its name alone:
// the chat platform's table and column names the jobs read.
func nameMeaning(prefix, name string) string {
	switch {
	case name == "table":
		return "The table, \"table\" or \"schema.table\""
	case strings.HasSuffix(name, "_column"):
		return "The column holding the " + strings.ReplaceAll(strings.TrimSuffix(name, "_column"), "_", " ")
	case strings.HasSuffix(prefix, ".columns"):
		return "The column holding the " + strings.ReplaceAll(name, "_", " ")
	}
	return ""
}

func elemStruct(t reflect.Type) bool {
	e := t.Elem()
	if e.Kind() == reflect.Pointer {
		e = e.Elem()
	}
	return e.Kind() == reflect.Struct && e != durationType
}

func orZero(v reflect.Value, t reflect.Type) reflect.Value {
	if !v.IsValid() {
		return reflect.New(t).Elem()
	}
	return v
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "int"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "number"
	}
	return t.Kind().String()
}

// formatDefault writes a default as it would be written in the file; "" when unset.
func formatDefault(v reflect.Value) string {
	if !v.IsValid() {
		return ""
	}
	if v.Type() == durationType {
		return shortDuration(time.Duration(v.Int()))
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return ""
		}
		return v.String()
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 {
			return ""
		}
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return ""
		}
	}
	raw, err := yaml.Marshal(v.Interface())
	if err != nil {
		return fmt.Sprint(v.Interface())
	}
	var n yaml.Node
	if yaml.Unmarshal(raw, &n) == nil && len(n.Content) == 1 {
		flow(n.Content[0])
		if raw, err = yaml.Marshal(n.Content[0]); err == nil {
			return strings.TrimSpace(string(raw))
		}
	}
	return strings.TrimSpace(string(raw))
}

func flow(n *yaml.Node) {
	n.Style |= yaml.FlowStyle
	for _, c := range n.Content {
		flow(c)
	}
}

// shortDuration is d without the zero units time.Duration.String adds ("10m", not "10m0s").
func shortDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// engineSections are the keys of the engine itself (scheduling, consuming, the broker and
// each job's run policy), as opposed to the clients of the systems the jobs maintain.
var engineSections = []string{"ticker.", "consumer.", "rocketmq.", "jobs."}

// EngineKeys counts the engine's keys (not deprecated) by section, and in all.
func EngineKeys(keys []Key) (bySection map[string]int, total int) {
	bySection = map[string]int{}
	for _, k := range keys {
		if k.Deprecated != "" {
			continue
		}
		for _, s := range engineSections {
			if strings.HasPrefix(k.Path, s) {
				bySection[strings.TrimSuffix(s, ".")]++
				total++
			}
		}
	}
	return bySection, total
}

// sortedSections are the top-level sections of keys in their order of appearance.
func sortedSections(keys []Key) []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		s := section(k.Path)
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func section(path string) string {
	parts := strings.SplitN(path, ".", 3)
	switch {
	case len(parts) == 1:
		return ""
	case parts[0] == "handlers" && len(parts) == 3:
		return parts[0] + "." + parts[1]
	}
	return parts[0]
}
