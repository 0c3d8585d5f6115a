// Example values for main.bicep (Bicep 0.18 or later reads .bicepparam):
//   az deployment group create -g wasmpipe-rg -f main.bicep -p main.bicepparam
// Addresses below are documentation ranges (RFC 5737): put your own
// workstation or CI egress addresses there. Parameters left out keep the
// defaults listed in main.bicep's header.
using './main.bicep'

param location = 'westeurope'
param namePrefix = 'wasmpipe'
param tags = {
  app: 'wasmpipe'
  env: 'staging'
}

// AKS
param kubernetesVersion = '1.33'
param nodeVmSize = 'Standard_D4s_v5'
param nodeCount = 3
param availabilityZones = [
  '1'
  '2'
  '3'
]
param networkPolicy = 'cilium'
param upgradeChannel = 'patch'
param apiServerAuthorizedIpRanges = [
  '203.0.113.0/24'
]
// Object IDs of the Entra users or groups who run kubectl (local accounts
// are disabled). Replace the placeholder, e.g. with
// `az ad signed-in-user show --query id -o tsv`.
param clusterAdminPrincipalIds = [
  '00000000-0000-0000-0000-000000000000'
]
param enableMonitoring = true

// Event Hubs: Kafka topics, partitions = the Deployment's replicas.
param eventHubsNamespaceName = 'wasmpipe-orders-staging'
param eventHubsSku = 'Standard'
param eventHubsCapacity = 1
param inputTopic = 'orders'
param outputTopic = 'orders-clean'
param dlqTopic = 'orders-dlq'
param partitions = 6
param retentionHours = 168
param consumerGroup = 'wasmpipe-orders'
param eventHubsAllowedIpRanges = [
  '203.0.113.10'
]

// Authentication. The overlay k8s/overlays/aks-eventhubs as it is uses SASL
// PLAIN with a connection string, which needs the SAS rule and local auth:
// these two lines are what runs with wasmpipe today. For workload identity
// only (no secret; needs an Entra token source in wasmpipe), set
// createSasPolicy = false and disableLocalAuth = true (the template's
// defaults).
param createSasPolicy = true
param disableLocalAuth = false

// Workload identity: the service account the identity is federated with.
param namespace = 'streams'
param serviceAccountName = 'wasmpipe'
