package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"

	"linkway/events"
	"linkway/services/linkway/hub"
	"linkway/services/platform/orgs"
)

const orgsUsage = `usage:
  linkway orgs add --code CODE --kind KIND --name NAME [--team U12345,...] [--sector SECTOR]
                                  register an organisation (kinds: %s);
                                  --team: the link-worker teams a practice refers to
                                  or a commissioner commissions; --sector: a referrer's
                                  (housing, social_care, hospital, dwp, police, education,
                                  other_agency: its referrals' source)
  linkway orgs list               list organisations
  linkway orgs disable CODE       its keys stop working at once; its history stays
  linkway orgs enable CODE        its keys work again
each takes --data DIR (hub stopped) or --nats URL (a running hub's NATS)
then: linkway keys create --org CODE`

// runOrgs manages the organisation register, so a deployment is set up
// without --demo and without editing NATS by hand (API.md).
func runOrgs(ctx context.Context, args []string, log *slog.Logger, stdout, stderr io.Writer) error {
	usage := fmt.Sprintf(orgsUsage, kindNames())
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help"):
		fmt.Fprintln(stdout, usage)
		return nil
	case len(args) == 0 || strings.HasPrefix(args[0], "-"):
		fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	}
	cfg := hub.DefaultConfig()
	cfg.Log = log
	cfg.NATSListen = "off"
	cfg.Command = "orgs " + args[0]
	fs := flag.NewFlagSet("orgs "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	hubFlags(fs, &cfg)
	code := fs.String("code", "", "organisation code: ODS code for practices and teams (orgs add)")
	kind := fs.String("kind", "", "kind: "+kindNames()+" (orgs add)")
	name := fs.String("name", "", "the organisation's name (orgs add)")
	teams := fs.String("team", "", "comma-separated link-worker team codes (orgs add: gp, referrer, commissioner)")
	sector := fs.String("sector", "", "a referrer's sector (orgs add; other_agency when not given)")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	var run func(*orgs.Registry) error
	switch args[0] {
	case "add":
		if len(pos) > 0 {
			return fmt.Errorf("orgs add takes flags only (got %v)", pos)
		}
		var links []string
		for t := range strings.SplitSeq(*teams, ",") {
			if t = strings.TrimSpace(t); t != "" {
				links = append(links, t)
			}
		}
		run = func(r *orgs.Registry) error {
			o := orgs.Organisation{ID: strings.TrimSpace(*code), Kind: events.Kind(strings.TrimSpace(*kind)), Name: *name,
				Sector: events.Sector(strings.TrimSpace(*sector))}
			if err := r.Add(ctx, o, links); err != nil {
				var e *events.Error
				if errors.As(err, &e) && e.Field != "" {
					return fmt.Errorf("--%s: %s", e.Field, e.Message)
				}
				return err
			}
			fmt.Fprintf(stdout, "registered %s (%s): %s\n", o.ID, o.Kind, strings.TrimSpace(o.Name))
			fmt.Fprintf(stderr, "next: linkway keys create --org %s\n", o.ID)
			return nil
		}
	case "list":
		run = func(r *orgs.Registry) error {
			all := r.All()
			slices.SortFunc(all, func(a, b orgs.Organisation) int { return strings.Compare(a.ID, b.ID) })
			tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CODE\tKIND\tNAME\tTEAMS\tSTATUS")
			for _, o := range all {
				status := "active"
				if o.Disabled {
					status = "disabled"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.ID, o.Kind, o.Name,
					strings.Join(append(slices.Clone(o.Teams), o.Commissions...), ","), status)
			}
			return tw.Flush()
		}
	case "disable", "enable":
		if len(pos) != 1 {
			return fmt.Errorf("usage: linkway orgs %s CODE", args[0])
		}
		disable := args[0] == "disable"
		run = func(r *orgs.Registry) error {
			if err := r.SetDisabled(ctx, pos[0], disable); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%sd %s\n", args[0], pos[0])
			return nil
		}
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("unknown orgs command %q", args[0])
	}
	conn, err := hub.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	registry, err := orgs.Open(ctx, conn.JS, cfg.Replicas)
	if err != nil {
		return err
	}
	return run(registry)
}

func kindNames() string {
	var names []string
	for _, k := range events.Kinds {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

// parseInterspersed parses flags given before or after the positional
// arguments (`orgs disable CODE --data DIR`), and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
