package bridge

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/smsbridge/bridge/group"
	"github.com/smsbridge/bridge/robot"
)

// robots are the groups' robots by name: the help robot, the keyword
// robots of --group-robots and the webhook robots of --robot-webhook.
type robots struct {
	byName map[string]robot.Robot
	close  []func(context.Context) error
}

// Offer hands a post to the group's robots (group.Robots); unknown names
// are skipped.
func (rs *robots) Offer(_ string, names []string, p group.Post) {
	rp := robot.Post{ID: p.ID, Group: p.Group, From: string(p.From), Nick: p.Nick, Text: p.Text, At: p.At}
	for _, n := range names {
		if r := rs.byName[n]; r != nil {
			r.Offer(rp)
		}
	}
}

// Close stops every robot, giving each until ctx ends to finish.
func (rs *robots) Close(ctx context.Context) {
	for _, c := range rs.close {
		c(ctx)
	}
}

// buildRobots starts the robots; their answers are posted into the group
// as the robot (b.groups exists by the time any is called).
func (b *Bridge) buildRobots() (*robots, error) {
	ans := func(ctx context.Context, g, name, text string) error {
		_, err := b.groups.PostAs(ctx, g, name, text)
		return err
	}
	log := b.log.With("part", "robots")
	rs := &robots{byName: map[string]robot.Robot{}}
	add := func(r robot.Robot, c func(context.Context) error) error {
		if rs.byName[r.Name()] != nil {
			c(context.Background())
			return fmt.Errorf("robot %q defined twice", r.Name())
		}
		rs.byName[r.Name()] = r
		rs.close = append(rs.close, c)
		return nil
	}
	help, err := robot.NewHelp(robot.HelpConfig{Text: group.HelpText, Answer: ans, Options: robot.Options{Logger: log}})
	if err != nil {
		return nil, err
	}
	add(help, help.Close)
	if f := b.cfg.GroupRobots; f != "" {
		file, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("robots: %w", err)
		}
		kws, err := robot.LoadKeywords(file)
		file.Close()
		if err != nil {
			return nil, fmt.Errorf("robots: %s: %w", f, err)
		}
		for _, kc := range kws {
			k, err := robot.NewKeyword(kc, ans, robot.Options{Logger: log})
			if err == nil {
				err = add(k, k.Close)
			}
			if err != nil {
				rs.Close(context.Background())
				return nil, fmt.Errorf("robots: %s: %w", f, err)
			}
		}
	}
	for _, spec := range b.cfg.RobotWebhooks {
		name, secret, url := webhookSpec(spec)
		w, err := robot.NewWebhook(robot.WebhookConfig{Name: name, URL: url, Secret: []byte(secret), Answer: ans, Logger: log})
		if err == nil {
			err = add(w, w.Close)
		}
		if err != nil {
			rs.Close(context.Background())
			return nil, fmt.Errorf("robot webhook %q: %w", name, err)
		}
	}
	return rs, nil
}

// robotAuth checks a webhook robot's signature on its own posts to a group
// (api.Config.RobotAuth): the secret it signs with is the one its requests
// from the bridge are signed with. nil without webhook robots.
func (b *Bridge) robotAuth() func(name, ts, sig string, body []byte) bool {
	secrets := map[string][]byte{}
	for _, spec := range b.cfg.RobotWebhooks {
		name, secret, _ := webhookSpec(spec)
		secrets[name] = []byte(secret)
	}
	if len(secrets) == 0 || b.groups == nil {
		return nil
	}
	return func(name, ts, sig string, body []byte) bool {
		secret, ok := secrets[name]
		return ok && robot.Verify(secret, ts, sig, body, time.Now(), 0) == nil
	}
}

// webhookSpec reads --robot-webhook's NAME:SECRET@URL (config checked it).
func webhookSpec(spec string) (name, secret, url string) {
	name, rest, _ := strings.Cut(spec, ":")
	secret, url, _ = strings.Cut(rest, "@")
	return name, secret, url
}

// robotsCloseWait bounds how long robots may finish at shutdown.
const robotsCloseWait = 3 * time.Second
