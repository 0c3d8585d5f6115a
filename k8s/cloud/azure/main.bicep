// wasmpipe on Azure: AKS + Event Hubs (Kafka endpoint) + workload identity.
//
// What it creates, in one resource group:
//   - a virtual network: subnet `aks-nodes` (AKS nodes, with an NSG and the
//     Microsoft.EventHub service endpoint) and, with enablePrivateEndpoint,
//     subnet `private-endpoints` holding the namespace's private endpoint and
//     its privatelink.servicebus.windows.net DNS zone;
//   - AKS: one system node pool across availability zones 1-3, Azure CNI
//     overlay with a network policy engine (Cilium or Calico), Entra ID auth
//     with Azure RBAC for Kubernetes and local accounts disabled, API server
//     authorized IP ranges, OIDC issuer + workload identity, an auto-upgrade
//     channel, the Key Vault Secrets Store CSI driver (rotation on) and,
//     with enableMonitoring, Container Insights into a Log Analytics
//     workspace plus the control plane's audit logs;
//   - Event Hubs: a Standard or Premium namespace (both serve the Kafka
//     endpoint on port 9093; Basic does not), TLS 1.2 minimum, network
//     rules that admit only the AKS node subnet and eventHubsAllowedIpRanges,
//     and one event hub (= Kafka topic) each for the input, output and
//     dead-letter topics with `partitions` partitions, plus the consumer
//     group `consumerGroup` on the input hub;
//   - workload identity: a user-assigned managed identity, federated with
//     the cluster's OIDC issuer for system:serviceaccount:<namespace>:wasmpipe
//     (audience api://AzureADTokenExchange), holding exactly two data roles:
//     Azure Event Hubs Data Receiver on the input hub and Azure Event Hubs
//     Data Sender on the output and dead-letter hubs. Nothing namespace-wide.
//
// Partitions and replicas. Event Hubs has no topic-creation step: the
// partition count is set here, per hub, and the Deployment's replicas must
// equal it (output `partitions`; `wasmpipe scale --deployment wasmpipe
// --topic orders`, or `wasmpipe operator`, keeps them equal). The base
// manifests say replicas: 3 while `partitions` defaults to 6: set one to
// the other. Standard allows at most 32 partitions per hub and cannot change
// the count after creation; Premium and Dedicated can only increase it.
//
// Authentication, and how this feeds k8s/overlays/aks-eventhubs:
//   - The overlay as it is uses SASL PLAIN with `$ConnectionString` and a
//     connection string. That works only with local (SAS) auth on:
//     deploy with createSasPolicy=true, which creates the namespace rule
//     `wasmpipe` (Listen + Send) and forces disableLocalAuth to false (the
//     rule is useless otherwise; output localAuthDisabled shows the value
//     actually deployed). Fetch the connection string with the command in
//     output sasConnectionStringCommand into kafka-credentials.env, and put
//     output `bootstrap` in WASMPIPE_BROKERS. The SAS rule is necessarily
//     namespace-wide (one connection string for three hubs), so keep this
//     namespace for these hubs only.
//   - The managed identity is for SASL/OAUTHBEARER with Entra ID tokens got
//     through AKS workload identity (disableLocalAuth=true, the default): no
//     secret anywhere, and roles scoped to single hubs. It needs the service
//     account annotated azure.workload.identity/client-id=<identityClientId>
//     and the pods labelled azure.workload.identity/use=true, and a token
//     source in wasmpipe that exchanges the projected token for an Entra
//     token (scope https://<namespace>.servicebus.windows.net/.default).
//     wasmpipe's token sources today are AWS MSK IAM and librdkafka's OIDC
//     client credentials, so until it has one, the overlay's SAS path is the
//     one that runs.
//
// Parameters (defaults in brackets; example values in main.bicepparam):
//   location [resource group's], namePrefix [wasmpipe], tags,
//   vnetAddressPrefix [10.240.0.0/16], nodeSubnetPrefix [10.240.0.0/22],
//   privateEndpointSubnetPrefix [10.240.8.0/24], podCidr [192.168.0.0/16],
//   serviceCidr [10.0.0.0/16], dnsServiceIP [10.0.0.10],
//   kubernetesVersion [1.33], nodeVmSize [Standard_D4s_v5], nodeCount [3],
//   availabilityZones [1,2,3], osDiskType [Managed], enableEncryptionAtHost
//   [true], aksSkuTier [Standard], networkPolicy [cilium], upgradeChannel
//   [patch], nodeOSUpgradeChannel [NodeImage], apiServerAuthorizedIpRanges
//   (required), clusterAdminPrincipalIds [none], enableMonitoring [true],
//   logRetentionDays [30], enableKeyVaultSecretsProvider [true],
//   eventHubsNamespaceName [<namePrefix>-<unique>], eventHubsSku [Standard],
//   eventHubsCapacity [1], disableLocalAuth [true], createSasPolicy [false],
//   publicNetworkAccess [Enabled], eventHubsAllowedIpRanges [none],
//   enablePrivateEndpoint [false], inputTopic [orders], outputTopic
//   [orders-clean], dlqTopic [orders-dlq], partitions [6], retentionHours
//   [168], consumerGroup [wasmpipe-orders], namespace [streams],
//   serviceAccountName [wasmpipe].
//
// Host names (servicebus.windows.net, privatelink.servicebus.windows.net)
// are Azure public cloud's; sovereign clouds use other suffixes.
//
// Prerequisites: with enableEncryptionAtHost (default), the subscription
// must have the feature registered once:
//   az feature register --namespace Microsoft.Compute --name EncryptionAtHost
// Deploy:
//   az deployment group create -g <rg> -f main.bicep -p main.bicepparam
//
// Validation: this template is checked offline with checkov's Bicep parser
// (`checkov -d k8s/cloud/azure --framework bicep`); it has not been compiled
// by the Bicep CLI nor deployed from here. Each suppressed check carries its
// reason next to it.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------- general

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Prefix of resource names: lower-case letters, digits and hyphens.')
@minLength(3)
@maxLength(12)
param namePrefix string = 'wasmpipe'

@description('Tags put on every resource.')
param tags object = {
  app: 'wasmpipe'
}

// ---------------------------------------------------------------- network

@description('Address space of the virtual network.')
param vnetAddressPrefix string = '10.240.0.0/16'

@description('Subnet of the AKS nodes (Azure CNI overlay: pods take IPs from podCidr, not from here).')
param nodeSubnetPrefix string = '10.240.0.0/22'

@description('Subnet of the Event Hubs private endpoint; created only with enablePrivateEndpoint.')
param privateEndpointSubnetPrefix string = '10.240.8.0/24'

@description('Pod address range (overlay); must not overlap the virtual network.')
param podCidr string = '192.168.0.0/16'

@description('Kubernetes service address range; must not overlap the virtual network or podCidr.')
param serviceCidr string = '10.0.0.0/16'

@description('Cluster DNS service IP, inside serviceCidr.')
param dnsServiceIP string = '10.0.0.10'

// ---------------------------------------------------------------- AKS

@description('Kubernetes version (major.minor picks the newest supported patch).')
param kubernetesVersion string = '1.33'

@description('VM size of the system node pool.')
param nodeVmSize string = 'Standard_D4s_v5'

@description('Nodes in the system node pool (one per zone at the default 3).')
@minValue(1)
@maxValue(100)
param nodeCount int = 3

@description('Availability zones of the system node pool.')
param availabilityZones array = [
  '1'
  '2'
  '3'
]

@description('OS disk type. Ephemeral needs a VM size with a local temp or cache disk (e.g. Standard_D4ds_v5); the default Standard_D4s_v5 has none.')
@allowed([
  'Managed'
  'Ephemeral'
])
param osDiskType string = 'Managed'

@description('Encrypt temp disks, caches and OS/data disk flows at the VM host. Needs the Microsoft.Compute/EncryptionAtHost feature registered on the subscription.')
param enableEncryptionAtHost bool = true

@description('AKS pricing tier: Standard has the uptime SLA.')
@allowed([
  'Free'
  'Standard'
])
param aksSkuTier string = 'Standard'

@description('Network policy engine. cilium runs on the Cilium dataplane; calico on the Azure dataplane.')
@allowed([
  'cilium'
  'calico'
])
param networkPolicy string = 'cilium'

@description('Kubernetes auto-upgrade channel.')
@allowed([
  'rapid'
  'stable'
  'patch'
  'node-image'
])
param upgradeChannel string = 'patch'

@description('Node OS auto-upgrade channel.')
@allowed([
  'NodeImage'
  'SecurityPatch'
  'Unmanaged'
])
param nodeOSUpgradeChannel string = 'NodeImage'

@description('CIDR ranges allowed to reach the Kubernetes API server (your workstation or CI egress). Required: an empty list would leave the API server open to the internet.')
@minLength(1)
param apiServerAuthorizedIpRanges array

@description('Entra object IDs (users or groups) given Azure Kubernetes Service RBAC Cluster Admin on the cluster. Local accounts are disabled, so someone needs this (or an equivalent role) to run kubectl.')
param clusterAdminPrincipalIds array = []

@description('Container Insights (monitoring add-on) into a new Log Analytics workspace, plus the control plane audit logs.')
param enableMonitoring bool = true

@description('Log Analytics retention in days.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Secrets Store CSI driver with the Key Vault provider, e.g. to sync kafka-credentials from Key Vault.')
param enableKeyVaultSecretsProvider bool = true

// ---------------------------------------------------------------- Event Hubs

@description('Event Hubs namespace name, globally unique: 6-50 letters, digits and hyphens, starting with a letter.')
@minLength(6)
@maxLength(50)
param eventHubsNamespaceName string = '${namePrefix}-${uniqueString(resourceGroup().id)}'

@description('Event Hubs tier. Both serve the Kafka endpoint; Basic does not and is not offered.')
@allowed([
  'Standard'
  'Premium'
])
param eventHubsSku string = 'Standard'

@description('Throughput units (Standard, 1-40) or processing units (Premium: 1, 2, 4, 8 or 16).')
@minValue(1)
@maxValue(40)
param eventHubsCapacity int = 1

@description('Refuse SAS keys and connection strings: Entra ID (workload identity) only. Forced to false when createSasPolicy is true.')
param disableLocalAuth bool = true

@description('Create the namespace SAS rule `wasmpipe` (Listen + Send) for the overlay\'s connection-string path. Turns local auth on whatever disableLocalAuth says.')
param createSasPolicy bool = false

@description('Public network access to the namespace. With Enabled, the network rules still admit only the AKS node subnet and eventHubsAllowedIpRanges. Use Disabled together with enablePrivateEndpoint.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

@description('Public IPv4 addresses or CIDR ranges, besides the AKS subnet, allowed to reach the namespace (e.g. to produce test records from a workstation).')
param eventHubsAllowedIpRanges array = []

@description('Reach the namespace through a private endpoint in the virtual network (Standard and above).')
param enablePrivateEndpoint bool = false

@description('Input event hub (Kafka topic) wasmpipe consumes.')
param inputTopic string = 'orders'

@description('Output event hub (Kafka topic) wasmpipe produces to.')
param outputTopic string = 'orders-clean'

@description('Dead-letter event hub (Kafka topic).')
param dlqTopic string = 'orders-dlq'

@description('Partitions of each event hub, and so the Deployment\'s replicas. Standard: at most 32, fixed after creation.')
@minValue(1)
@maxValue(100)
param partitions int = 6

@description('Retention of each event hub in hours (Standard: at most 168; Premium: at most 2160).')
@minValue(1)
@maxValue(2160)
param retentionHours int = 168

@description('Consumer group on the input hub (WASMPIPE_GROUP).')
param consumerGroup string = 'wasmpipe-orders'

// ---------------------------------------------------------------- workload identity

@description('Kubernetes namespace wasmpipe runs in.')
param namespace string = 'streams'

@description('Kubernetes service account of the wasmpipe pods.')
param serviceAccountName string = 'wasmpipe'

// ---------------------------------------------------------------- variables

var aksName = '${namePrefix}-aks'
var nodeSubnetName = 'aks-nodes'
var privateEndpointSubnetName = 'private-endpoints'
var localAuthDisabled = createSasPolicy ? false : disableLocalAuth
var networkDataplane = networkPolicy == 'cilium' ? 'cilium' : 'azure'

// Built-in role definition IDs.
var eventHubsDataReceiverRoleId = 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
var eventHubsDataSenderRoleId = '2b629674-e913-4c01-ae53-ef4638d8f975'
var networkContributorRoleId = '4d97b98b-1d4f-4787-a291-c67834d212e7'
var aksRbacClusterAdminRoleId = 'b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b'

var nodeSubnet = {
  name: nodeSubnetName
  properties: {
    addressPrefix: nodeSubnetPrefix
    networkSecurityGroup: {
      id: nodesNsg.id
    }
    serviceEndpoints: [
      {
        service: 'Microsoft.EventHub'
      }
    ]
  }
}

var privateEndpointSubnet = {
  name: privateEndpointSubnetName
  properties: {
    addressPrefix: privateEndpointSubnetPrefix
    networkSecurityGroup: {
      id: privateEndpointNsg.id
    }
    privateEndpointNetworkPolicies: 'Enabled'
  }
}

// ---------------------------------------------------------------- network

// No custom rules: the default rules admit traffic from inside the virtual
// network and from Azure's load balancer, nothing from the internet.
// wasmpipe exposes no public Service; a LoadBalancer Service with a public
// IP would need an inbound rule here.
resource nodesNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: '${namePrefix}-aks-nodes-nsg'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource privateEndpointNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = if (enablePrivateEndpoint) {
  name: '${namePrefix}-private-endpoints-nsg'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: '${namePrefix}-vnet'
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        vnetAddressPrefix
      ]
    }
    subnets: enablePrivateEndpoint ? [
      nodeSubnet
      privateEndpointSubnet
    ] : [
      nodeSubnet
    ]
  }
}

resource aksNodesSubnet 'Microsoft.Network/virtualNetworks/subnets@2024-05-01' existing = {
  parent: vnet
  name: nodeSubnetName
}

// ---------------------------------------------------------------- AKS

// The control plane's identity: it joins the nodes to the subnet, so it
// holds Network Contributor on that subnet alone, granted before the
// cluster is created.
resource aksControlPlaneIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-aks-control-plane'
  location: location
  tags: tags
}

resource aksSubnetNetworkContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vnet.id, nodeSubnetName, aksControlPlaneIdentity.id, networkContributorRoleId)
  scope: aksNodesSubnet
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', networkContributorRoleId)
    principalId: aksControlPlaneIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [
    vnet
  ]
}

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = if (enableMonitoring) {
  name: '${namePrefix}-logs'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource aks 'Microsoft.ContainerService/managedClusters@2025-05-01' = {
  // checkov:skip=CKV_AZURE_8: the Kubernetes Dashboard add-on no longer exists in AKS (removed for Kubernetes 1.19 and later): there is nothing to turn off, and the template does not name the retired add-on
  // checkov:skip=CKV_AZURE_172: rotation is on (addonProfiles.azureKeyvaultSecretsProvider.config.enableSecretRotation = 'true'); the add-on config is a map of strings in the AKS API, and the check compares with a JSON boolean
  // checkov:skip=CKV_AZURE_226: osDiskType is a parameter; its default is Managed because the default VM size Standard_D4s_v5 has no local temp or cache disk, which Ephemeral requires (choose a D*ds_v5 size and Ephemeral)
  name: aksName
  location: location
  tags: tags
  sku: {
    name: 'Base'
    tier: aksSkuTier
  }
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${aksControlPlaneIdentity.id}': {}
    }
  }
  properties: {
    kubernetesVersion: kubernetesVersion
    dnsPrefix: aksName
    enableRBAC: true
    disableLocalAccounts: true
    aadProfile: {
      managed: true
      enableAzureRBAC: true
      tenantID: subscription().tenantId
    }
    apiServerAccessProfile: {
      authorizedIPRanges: apiServerAuthorizedIpRanges
    }
    agentPoolProfiles: [
      {
        name: 'system'
        mode: 'System'
        type: 'VirtualMachineScaleSets'
        count: nodeCount
        vmSize: nodeVmSize
        osType: 'Linux'
        osSKU: 'AzureLinux'
        osDiskType: osDiskType
        enableEncryptionAtHost: enableEncryptionAtHost
        availabilityZones: availabilityZones
        vnetSubnetID: aksNodesSubnet.id
        maxPods: 110
        enableAutoScaling: false
      }
    ]
    networkProfile: {
      networkPlugin: 'azure'
      networkPluginMode: 'overlay'
      networkDataplane: networkDataplane
      networkPolicy: networkPolicy
      podCidr: podCidr
      serviceCidr: serviceCidr
      dnsServiceIP: dnsServiceIP
      loadBalancerSku: 'standard'
      outboundType: 'loadBalancer'
    }
    autoUpgradeProfile: {
      upgradeChannel: upgradeChannel
      nodeOSUpgradeChannel: nodeOSUpgradeChannel
    }
    oidcIssuerProfile: {
      enabled: true
    }
    securityProfile: {
      workloadIdentity: {
        enabled: true
      }
    }
    addonProfiles: {
      omsagent: {
        enabled: enableMonitoring
        config: enableMonitoring ? {
          logAnalyticsWorkspaceResourceID: logAnalytics.id
          useAADAuth: 'true'
        } : {}
      }
      azureKeyvaultSecretsProvider: {
        enabled: enableKeyVaultSecretsProvider
        config: {
          enableSecretRotation: 'true'
          rotationPollInterval: '2m'
        }
      }
    }
  }
  dependsOn: [
    aksSubnetNetworkContributor
  ]
}

resource aksClusterAdmins 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in clusterAdminPrincipalIds: {
  name: guid(aks.id, principalId, aksRbacClusterAdminRoleId)
  scope: aks
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', aksRbacClusterAdminRoleId)
    principalId: principalId
  }
}]

// Container Insights through the Azure Monitor agent: the add-on alone
// collects nothing without this data collection rule and its association.
resource containerInsightsDcr 'Microsoft.Insights/dataCollectionRules@2022-06-01' = if (enableMonitoring) {
  name: 'MSCI-${location}-${aksName}'
  location: location
  tags: tags
  kind: 'Linux'
  properties: {
    dataSources: {
      extensions: [
        {
          name: 'ContainerInsightsExtension'
          extensionName: 'ContainerInsights'
          streams: [
            'Microsoft-ContainerInsights-Group-Default'
          ]
          extensionSettings: {
            dataCollectionSettings: {
              interval: '1m'
              namespaceFilteringMode: 'Off'
              enableContainerLogV2: true
            }
          }
        }
      ]
    }
    destinations: {
      logAnalytics: [
        {
          name: 'ciworkspace'
          workspaceResourceId: logAnalytics.id
        }
      ]
    }
    dataFlows: [
      {
        streams: [
          'Microsoft-ContainerInsights-Group-Default'
        ]
        destinations: [
          'ciworkspace'
        ]
      }
    ]
  }
}

resource containerInsightsDcrAssociation 'Microsoft.Insights/dataCollectionRuleAssociations@2022-06-01' = if (enableMonitoring) {
  name: 'ContainerInsightsExtension'
  scope: aks
  properties: {
    dataCollectionRuleId: containerInsightsDcr.id
  }
}

resource aksDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (enableMonitoring) {
  name: 'control-plane-to-log-analytics'
  scope: aks
  properties: {
    workspaceId: logAnalytics.id
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        category: 'kube-audit-admin'
        enabled: true
      }
      {
        category: 'guard'
        enabled: true
      }
    ]
  }
}

// ---------------------------------------------------------------- Event Hubs

resource eventHubsNamespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: eventHubsNamespaceName
  location: location
  tags: tags
  sku: {
    name: eventHubsSku
    tier: eventHubsSku
    capacity: eventHubsCapacity
  }
  properties: {
    minimumTlsVersion: '1.2'
    disableLocalAuth: localAuthDisabled
    publicNetworkAccess: publicNetworkAccess
  }
}

// Only the AKS node subnet (service endpoint) and the listed addresses get
// through; with the private endpoint, traffic from the virtual network
// arrives that way instead.
resource eventHubsNetworkRules 'Microsoft.EventHub/namespaces/networkRuleSets@2024-01-01' = {
  parent: eventHubsNamespace
  name: 'default'
  properties: {
    defaultAction: 'Deny'
    publicNetworkAccess: publicNetworkAccess
    trustedServiceAccessEnabled: false
    virtualNetworkRules: [
      {
        subnet: {
          id: aksNodesSubnet.id
        }
        ignoreMissingVnetServiceEndpoint: false
      }
    ]
    ipRules: [for ipRange in eventHubsAllowedIpRanges: {
      ipMask: ipRange
      action: 'Allow'
    }]
  }
  dependsOn: [
    vnet
  ]
}

resource inputHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: eventHubsNamespace
  name: inputTopic
  properties: {
    partitionCount: partitions
    retentionDescription: {
      cleanupPolicy: 'Delete'
      retentionTimeInHours: retentionHours
    }
  }
}

resource outputHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: eventHubsNamespace
  name: outputTopic
  properties: {
    partitionCount: partitions
    retentionDescription: {
      cleanupPolicy: 'Delete'
      retentionTimeInHours: retentionHours
    }
  }
}

resource dlqHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: eventHubsNamespace
  name: dlqTopic
  properties: {
    partitionCount: partitions
    retentionDescription: {
      cleanupPolicy: 'Delete'
      retentionTimeInHours: retentionHours
    }
  }
}

resource inputConsumerGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: inputHub
  name: consumerGroup
  properties: {
    userMetadata: 'wasmpipe: one member per partition of ${inputTopic}'
  }
}

// For the overlay's connection-string path only (see the header).
resource sasPolicy 'Microsoft.EventHub/namespaces/authorizationRules@2024-01-01' = if (createSasPolicy) {
  parent: eventHubsNamespace
  name: 'wasmpipe'
  properties: {
    rights: [
      'Listen'
      'Send'
    ]
  }
}

resource privateDnsZone 'Microsoft.Network/privateDnsZones@2020-06-01' = if (enablePrivateEndpoint) {
  name: 'privatelink.servicebus.windows.net'
  location: 'global'
  tags: tags
}

resource privateDnsZoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = if (enablePrivateEndpoint) {
  parent: privateDnsZone
  name: '${namePrefix}-vnet-link'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}

resource eventHubsPrivateEndpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = if (enablePrivateEndpoint) {
  name: '${namePrefix}-eventhubs-pe'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: '${vnet.id}/subnets/${privateEndpointSubnetName}'
    }
    privateLinkServiceConnections: [
      {
        name: 'eventhubs'
        properties: {
          privateLinkServiceId: eventHubsNamespace.id
          groupIds: [
            'namespace'
          ]
        }
      }
    ]
  }
}

resource eventHubsPrivateDnsZoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = if (enablePrivateEndpoint) {
  parent: eventHubsPrivateEndpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: 'servicebus'
        properties: {
          privateDnsZoneId: privateDnsZone.id
        }
      }
    ]
  }
}

// ---------------------------------------------------------------- workload identity

resource wasmpipeIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-workload'
  location: location
  tags: tags
}

resource wasmpipeFederatedCredential 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: wasmpipeIdentity
  name: 'aks-${namespace}-${serviceAccountName}'
  properties: {
    issuer: aks.properties.oidcIssuerProfile.issuerURL
    subject: 'system:serviceaccount:${namespace}:${serviceAccountName}'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

// Receive on the input hub only.
resource inputHubReceiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(inputHub.id, wasmpipeIdentity.id, eventHubsDataReceiverRoleId)
  scope: inputHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataReceiverRoleId)
    principalId: wasmpipeIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Send on the output hub only.
resource outputHubSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(outputHub.id, wasmpipeIdentity.id, eventHubsDataSenderRoleId)
  scope: outputHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataSenderRoleId)
    principalId: wasmpipeIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Send on the dead-letter hub only.
resource dlqHubSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(dlqHub.id, wasmpipeIdentity.id, eventHubsDataSenderRoleId)
  scope: dlqHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataSenderRoleId)
    principalId: wasmpipeIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------- outputs

@description('AKS cluster name.')
output aksName string = aks.name

@description('Event Hubs namespace name.')
output eventHubsNamespace string = eventHubsNamespace.name

@description('Kafka bootstrap server: WASMPIPE_BROKERS in the overlay.')
output bootstrap string = '${eventHubsNamespace.name}.servicebus.windows.net:9093'

@description('Client ID of the workload identity: the service account\'s azure.workload.identity/client-id annotation.')
output identityClientId string = wasmpipeIdentity.properties.clientId

@description('Entra tenant of the identity and the cluster.')
output tenantId string = subscription().tenantId

@description('Partitions of each hub: the Deployment\'s replicas must equal it.')
output partitions int = partitions

@description('Consumer group on the input hub: WASMPIPE_GROUP.')
output consumerGroup string = consumerGroup

@description('Topics: WASMPIPE_INPUT_TOPIC, WASMPIPE_OUTPUT_TOPIC, WASMPIPE_DLQ_TOPIC.')
output topics object = {
  input: inputHub.name
  output: outputHub.name
  dlq: dlqHub.name
}

@description('OIDC issuer URL of the cluster (the federated credential\'s issuer).')
output oidcIssuerUrl string = aks.properties.oidcIssuerProfile.issuerURL

@description('Kubernetes service account the identity is federated with.')
output serviceAccount string = 'system:serviceaccount:${namespace}:${serviceAccountName}'

@description('Whether the namespace refuses SAS keys, as deployed (false whenever createSasPolicy is true).')
output localAuthDisabled bool = localAuthDisabled

@description('kubectl credentials: Entra ID sign-in through kubelogin, as local accounts are disabled.')
output getCredentialsCommand string = 'az aks get-credentials --resource-group ${resourceGroup().name} --name ${aks.name} && kubelogin convert-kubeconfig -l azurecli'

@description('With createSasPolicy: prints the connection string for WASMPIPE_KAFKA_SASL_PASSWORD (the secret itself is never an output).')
output sasConnectionStringCommand string = createSasPolicy ? 'az eventhubs namespace authorization-rule keys list --resource-group ${resourceGroup().name} --namespace-name ${eventHubsNamespace.name} --name wasmpipe --query primaryConnectionString --output tsv' : 'createSasPolicy=false: no SAS rule; use the workload identity'
