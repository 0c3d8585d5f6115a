"""What the cloud stacks grant wasmpipe, against what its code asks of Kafka.

Run by k8s/cloud/check with the venv that has cfn-lint (its YAML reader
reads CloudFormation's short tags):

    python k8s/cloud/policy_test.py

The names the pipeline derives are read from the host's source, so a change
there that the stacks do not follow fails here:

- the transactional id, one per pod: `--group`, a dash, the pod's hostname
  (host/src/bin/wasmpipe/main.rs);
- a stateful plugin's changelog topic: `GROUP-PLUGIN-changelog`, with a
  generation suffix (host/src/state/changelog.rs).

The Kafka requests behind each grant: Metadata (DescribeTopic) and Fetch
(ReadData) on the input; Produce (WriteData) on the output and dead-letter
topics; JoinGroup, SyncGroup, Heartbeat, OffsetFetch and OffsetCommit on the
group (DescribeGroup, AlterGroup); InitProducerId with an idempotent
producer in both modes (WriteDataIdempotently); under exactly-once
InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and
EndTxn on the transactional id (DescribeTransactionalId,
AlterTransactionalId); for state, CreateTopics and DescribeConfigs on the
changelogs besides reading and writing them.
"""

import itertools
import json
import pathlib
import re
import sys

from cfnlint.decode import decode

ROOT = pathlib.Path(__file__).resolve().parents[2]
FAILURES = []


def check(ok, what):
    if not ok:
        FAILURES.append(what)


def code_names():
    """The transactional-id prefix and changelog pattern the host's code
    builds from a group name, as (prefix, changelog) format strings."""
    main = (ROOT / "host/src/bin/wasmpipe/main.rs").read_text()
    txn = re.search(r'unwrap_or_else\(\|\| format!\("\{\}-\{host\}", args\.group\)\)', main)
    check(txn, "main.rs: the default transactional id is no longer GROUP-HOSTNAME")
    changelog = (ROOT / "host/src/state/changelog.rs").read_text()
    name = re.search(r'format!\("\{group\}-\{plugin\}-changelog\{suffix\}"\)', changelog)
    check(name, "changelog.rs: changelog topics are no longer GROUP-PLUGIN-changelog[SUFFIX]")
    return "{group}-*", "{group}-*-changelog*"


def expected_msk(p, cluster, txn, changelog):
    """The statements the pipeline's role needs, by Sid."""
    arn = cluster.rsplit(":cluster/", 1)[0]
    name_uuid = cluster.split(":cluster/", 1)[1]
    res = lambda kind, name: f"{arn}:{kind}/{name_uuid}/{name}"
    topic = lambda t: res("topic", t)
    group = p["ConsumerGroup"]
    want = {
        "Connect": ({"kafka-cluster:Connect"}, {cluster}),
        "ReadInput": (
            {"kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"},
            {topic(p["InputTopic"])},
        ),
        "WriteOutputAndDeadLetters": (
            {"kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"},
            {topic(p["OutputTopic"]), topic(p["DeadLetterTopic"])},
        ),
        "ConsumerGroup": (
            {"kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"},
            {res("group", group)},
        ),
        "IdempotentWrites": ({"kafka-cluster:WriteDataIdempotently"}, {cluster}),
    }
    if p["Delivery"] == "exactly-once":
        want["ExactlyOnce"] = (
            {"kafka-cluster:DescribeTransactionalId", "kafka-cluster:AlterTransactionalId"},
            {res("transactional-id", txn.format(group=group))},
        )
    if p["StatefulPlugins"] == "true":
        want["StateChangelogs"] = (
            {
                "kafka-cluster:CreateTopic",
                "kafka-cluster:DescribeTopic",
                "kafka-cluster:DescribeTopicDynamicConfiguration",
                "kafka-cluster:ReadData",
                "kafka-cluster:WriteData",
            },
            {topic(changelog.format(group=group))},
        )
    return want


class Cfn:
    """Just enough of CloudFormation's intrinsics to read a policy."""

    def __init__(self, template, params, refs):
        self.t, self.params, self.refs = template, params, refs

    def condition(self, name):
        return self.value(self.t["Conditions"][name])

    def value(self, v):
        if isinstance(v, list):
            return [x for x in (self.value(i) for i in v) if x is not None]
        if not isinstance(v, dict):
            return v
        if len(v) != 1:
            return {k: self.value(x) for k, x in v.items()}
        (fn, arg), = v.items()
        if fn == "Ref":
            if arg == "AWS::NoValue":
                return None
            return self.params.get(arg, self.refs.get(arg))
        if fn == "Fn::Equals":
            a, b = (self.value(x) for x in arg)
            return a == b
        if fn == "Fn::If":
            cond, yes, no = arg
            return self.value(yes if self.condition(cond) else no)
        if fn == "Fn::Select":
            return self.value(arg[1])[arg[0]]
        if fn == "Fn::Split":
            return self.value(arg[1]).split(arg[0])
        if fn == "Fn::Sub":
            text, names = (arg, {}) if isinstance(arg, str) else arg
            names = {**self.params, **self.refs, **{k: self.value(x) for k, x in names.items()}}
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(names[m.group(1)]), text)
        return {fn: self.value(arg)}


def statements(doc):
    got = {}
    for s in doc["Statement"]:
        check(s.get("Effect") == "Allow", f"{s.get('Sid')}: not an Allow")
        as_set = lambda x: set(x) if isinstance(x, list) else {x}
        check(s["Sid"] not in got, f"Sid {s['Sid']} twice")
        got[s["Sid"]] = (as_set(s["Action"]), as_set(s["Resource"]))
    return got


def compare(where, got, want):
    for sid in sorted(set(got) | set(want)):
        if sid not in want:
            check(False, f"{where}: statement {sid} grants what the pipeline does not use: {got[sid]}")
        elif sid not in got:
            check(False, f"{where}: statement {sid} is missing: {want[sid]}")
        else:
            check(got[sid] == want[sid], f"{where}: {sid} grants {got[sid]}, the pipeline uses {want[sid]}")


def aws():
    template, matches = decode(str(ROOT / "k8s/cloud/aws/wasmpipe.yaml"))
    check(not matches, f"wasmpipe.yaml does not parse: {matches}")
    txn, changelog = code_names()
    defaults = {k: v.get("Default") for k, v in template["Parameters"].items()}
    pseudo = {"AWS::Partition": "aws", "AWS::Region": "eu-west-1", "AWS::AccountId": "111122223333"}
    cases = 0
    for delivery, stateful in itertools.product(["exactly-once", "at-least-once"], ["true", "false"]):
        params = {**defaults, **pseudo, "Delivery": delivery, "StatefulPlugins": stateful}
        cluster = f"arn:aws:kafka:eu-west-1:111122223333:cluster/{params['MskClusterName']}/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d-2"
        cfn = Cfn(template, params, {"MskCluster": cluster})
        role = template["Resources"]["PipelineRole"]["Properties"]
        (policy,) = role["Policies"]
        got = statements(cfn.value(policy["PolicyDocument"]))
        compare(f"PipelineRole ({delivery}, stateful={stateful})", got, expected_msk(params, cluster, txn, changelog))
        trust = cfn.value(role["AssumeRolePolicyDocument"])["Statement"]
        check(
            [s["Principal"] for s in trust] == [{"Service": "pods.eks.amazonaws.com"}],
            "PipelineRole: trusted by anything but EKS Pod Identity",
        )
        check(
            trust[0]["Condition"]["StringEquals"]["aws:RequestTag/kubernetes-service-account"] == "wasmpipe",
            "PipelineRole: not limited to the wasmpipe service account",
        )
        topics = cfn.value(template["Resources"]["TopicsRole"]["Properties"]["Policies"][0]["PolicyDocument"])
        want = expected_msk(params, cluster, txn, changelog)
        arn = lambda t: want["ReadInput"][1].copy().pop().rsplit("/", 1)[0] + "/" + t
        compare(
            "TopicsRole",
            statements(topics),
            {
                "Connect": want["Connect"],
                "CreateTopics": (
                    {"kafka-cluster:CreateTopic", "kafka-cluster:DescribeTopic", "kafka-cluster:AlterTopic"},
                    {arn(params[t]) for t in ("InputTopic", "OutputTopic", "DeadLetterTopic")},
                ),
            },
        )
        cases += 1
    # The overlay's example policy is the template's, for its example
    # cluster (arn:aws:kafka:eu-west-1:111122223333:cluster/orders/UUID).
    overlay = json.loads((ROOT / "k8s/overlays/eks-msk-iam/iam-policy.json").read_text())
    got = statements(overlay)
    cluster = got["Connect"][1].copy().pop() if "Connect" in got else "?"
    params = {**defaults, "Delivery": "exactly-once", "StatefulPlugins": "false"}
    compare("k8s/overlays/eks-msk-iam/iam-policy.json", got, expected_msk(params, cluster, txn, changelog))
    return cases


def gcp():
    """The Confluent Cloud ACLs of wasmpipe's service account."""
    text = (ROOT / "k8s/cloud/gcp/confluent.tf").read_text()
    block = text[text.index("wasmpipe_acls = merge(") :]
    block = block[: block.index('resource "confluent_kafka_acl"')]
    acl = re.compile(
        r'resource_type = "(\w+)"\s+resource_name = (.+?)\s+pattern_type\s+= "(\w+)"\s+operation\s+= "(\w+)"'
    )
    got = {m.groups() for m in acl.finditer(block)}
    topic = lambda k: f'confluent_kafka_topic.pipeline["{k}"].topic_name'
    txn, _ = code_names()
    want = {
        ("TOPIC", topic("input"), "LITERAL", "READ"),
        ("TOPIC", topic("input"), "LITERAL", "DESCRIBE"),
        ("TOPIC", topic("output"), "LITERAL", "WRITE"),
        ("TOPIC", topic("output"), "LITERAL", "DESCRIBE"),
        ("TOPIC", topic("dead_letter"), "LITERAL", "WRITE"),
        ("TOPIC", topic("dead_letter"), "LITERAL", "DESCRIBE"),
        ("GROUP", "var.consumer_group", "LITERAL", "READ"),
        # Exactly-once only (the block is filtered on var.delivery).
        ("TRANSACTIONAL_ID", '"' + txn.format(group="${var.consumer_group}").rstrip("*") + '"', "PREFIXED", "WRITE"),
        ("TRANSACTIONAL_ID", '"' + txn.format(group="${var.consumer_group}").rstrip("*") + '"', "PREFIXED", "DESCRIBE"),
        ("CLUSTER", '"kafka-cluster"', "LITERAL", "IDEMPOTENT_WRITE"),
    }
    check(got == want, f"confluent.tf: wasmpipe's ACLs are {sorted(got - want)} more, {sorted(want - got)} fewer")
    check('if var.delivery == "exactly-once"' in block, "confluent.tf: the transactional ACLs are not for exactly-once only")


def azure():
    """Event Hubs roles of wasmpipe's identity: receive on the input hub,
    send on the output and dead-letter hubs, nothing on the namespace."""
    text = (ROOT / "k8s/cloud/azure/main.bicep").read_text()
    assignments = re.findall(
        r"resource \w+ 'Microsoft\.Authorization/roleAssignments@[^']+' = (?:if \([^)]*\) )?\{(.*?)\n\}",
        text,
        re.S,
    )
    mine = []
    for body in assignments:
        if "wasmpipeIdentity" not in body:
            continue
        scope = re.search(r"scope: (\w+)", body).group(1)
        role = re.search(r"roleDefinitions', (\w+)\)", body).group(1)
        mine.append((scope, role))
    want = [
        ("inputHub", "eventHubsDataReceiverRoleId"),
        ("outputHub", "eventHubsDataSenderRoleId"),
        ("dlqHub", "eventHubsDataSenderRoleId"),
    ]
    check(sorted(mine) == sorted(want), f"main.bicep: wasmpipe's identity has {mine}, the pipeline uses {want}")


if __name__ == "__main__":
    cases = aws()
    gcp()
    azure()
    if FAILURES:
        print("\n".join(f"policy_test: {f}" for f in FAILURES), file=sys.stderr)
        sys.exit(1)
    print(f"policy_test: AWS roles in {cases} delivery/state cases, the overlay's policy, Confluent ACLs and Event Hubs roles grant what the pipeline uses, and no more")
