// Switchboard in Azure, the whole production shape:
//   a user-assigned managed identity (the bot's only identity: Bot Framework, Cosmos DB);
//   a Linux App Service plan and web app running `python app.py` (Python, built by Oryx from
//   requirements.txt), health-checked on /healthz, always on, HTTPS only, optionally with a
//   staging slot to deploy into and swap;
//   the Azure Bot resource (UserAssignedMSI) with the Microsoft Teams channel;
//   Cosmos DB for NoSQL with the containers of cosmos-containers.json and data-plane roles;
//   Application Insights on a Log Analytics workspace.
//
// Deploy with the Microsoft 365 Agents Toolkit (m365agents.yml, parameters from
// azure.parameters.json) or with `az deployment group create` (docs/install.md).
// Every app setting below is read by app.py's Settings, by a library, or by App Service:
// tests/test_deploy_infra.py checks that.

targetScope = 'resourceGroup'

// -- names --------------------------------------------------------------------------------

@description('Base of every resource name (the Toolkit adds RESOURCE_SUFFIX): 4 to 20 lowercase letters, digits and hyphens.')
@minLength(4)
@maxLength(20)
param resourceBaseName string

param location string = resourceGroup().location
param identityName string = '${resourceBaseName}-id'
param appServicePlanName string = '${resourceBaseName}-plan'
@description('The web app: <name>.azurewebsites.net, unique in Azure.')
param webAppName string = resourceBaseName
param botServiceName string = resourceBaseName
@maxLength(42)
param botDisplayName string = 'Switchboard'
@description('Cosmos DB account: unique in Azure, lowercase.')
param cosmosAccountName string = toLower(resourceBaseName)
param cosmosDatabaseName string = 'switchboard'
param logAnalyticsName string = '${resourceBaseName}-logs'
param appInsightsName string = '${resourceBaseName}-ai'

// -- sizes --------------------------------------------------------------------------------

@description('App Service plan SKU. Standard (S1) and Premium (P0v3, P1v3...) have deployment slots and autoscale; Basic (B1) runs always-on but has no slots.')
param appServiceSku string = 'P0v3'

@description('Instances of the web app. Several are safe: every instance shares the state in Cosmos DB.')
@minValue(1)
@maxValue(30)
param instanceCount int = 2

@description('Python of the App Service runtime (PYTHON|<version>); the project needs 3.11 to 3.13.')
@allowed([
  '3.11'
  '3.12'
  '3.13'
])
param pythonVersion string = '3.11'

@description('Create a "staging" deployment slot to deploy into and swap with production (needs Standard or Premium).')
param stagingSlot bool = false

@allowed([
  'F0'
  'S1'
])
param botServiceSku string = 'F0'

@description('provisioned: autoscale throughput shared by the database\'s containers; serverless: pay per request.')
@allowed([
  'provisioned'
  'serverless'
])
param cosmosCapacityMode string = 'provisioned'

@description('The most RU/s the database may autoscale to (it scales between a tenth of this and this). Provisioned mode only.')
@minValue(1000)
param cosmosAutoscaleMaxThroughput int = 1000

@description('true: Cosmos DB refuses keys; only Microsoft Entra ID gets in (the bot uses its managed identity).')
param cosmosDisableLocalAuth bool = true

param cosmosZoneRedundant bool = false

@description('Object ids of people or groups who read the store with switchboard-admin (Cosmos DB Built-in Data Reader).')
param cosmosReaderPrincipalIds array = []

@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

// -- the app ------------------------------------------------------------------------------

@description('The tenants\' configuration, relative to the deployed app\'s folder (SWITCHBOARD_CONFIG).')
param configFile string = 'examples/helpdesk.yaml'

@allowed([
  'DEBUG'
  'INFO'
  'WARNING'
  'ERROR'
])
param logLevel string = 'INFO'

@description('The port the app listens on inside App Service (PORT).')
param appPort int = 8000

@description('Seconds App Service waits after SIGTERM before it kills an instance, on every deploy, restart and scale-in: the time the bot has to finish the turns in flight and their sends (at most 120).')
@minValue(5)
@maxValue(120)
param shutdownGraceSeconds int = 60

@description('Seconds the bot itself gives turns in flight after SIGTERM (SWITCHBOARD_SHUTDOWN_SECONDS): keep it below shutdownGraceSeconds.')
@minValue(1)
@maxValue(115)
param drainSeconds int = 50

@description('Days a closed chat, its transcript and its records are kept before they expire (Cosmos TTL).')
@minValue(1)
@maxValue(3650)
param retentionDays int = 90

@description('More settings of the README\'s Settings table, name to value, for example {"SWITCHBOARD_SEND_RETRY_SECONDS": "20"}.')
param extraAppSettings object = {}

// -- resources ----------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
}

module monitoring 'monitoring.bicep' = {
  name: 'switchboard-monitoring'
  params: {
    workspaceName: logAnalyticsName
    appInsightsName: appInsightsName
    location: location
    retentionDays: logRetentionDays
  }
}

module cosmos 'cosmos.bicep' = {
  name: 'switchboard-cosmos'
  params: {
    accountName: cosmosAccountName
    location: location
    databaseName: cosmosDatabaseName
    capacityMode: cosmosCapacityMode
    autoscaleMaxThroughput: cosmosAutoscaleMaxThroughput
    disableLocalAuth: cosmosDisableLocalAuth
    zoneRedundant: cosmosZoneRedundant
    appPrincipalId: identity.properties.principalId
    readerPrincipalIds: cosmosReaderPrincipalIds
  }
}

var appSettings = [
  // App Service: build with Oryx on zip deploy (pip install -r requirements.txt)
  {
    name: 'SCM_DO_BUILD_DURING_DEPLOYMENT'
    value: 'true'
  }
  // App Service: time to start, and to stop gracefully after SIGTERM
  {
    name: 'WEBSITES_CONTAINER_START_TIME_LIMIT'
    value: '600'
  }
  {
    name: 'WEBSITES_CONTAINER_STOP_TIME_LIMIT'
    value: string(shutdownGraceSeconds)
  }
  // App Service: route to a new instance (restart, scale-out) or a swapped slot only once
  // /healthz answers 200, that is once its store answers
  {
    name: 'WEBSITE_WARMUP_PATH'
    value: '/healthz'
  }
  {
    name: 'WEBSITE_WARMUP_STATUSES'
    value: '200'
  }
  {
    name: 'WEBSITE_SWAP_WARMUP_PING_PATH'
    value: '/healthz'
  }
  {
    name: 'WEBSITE_SWAP_WARMUP_PING_STATUSES'
    value: '200'
  }
  // Switchboard (app.py Settings)
  {
    name: 'SWITCHBOARD_HOST'
    value: '0.0.0.0'
  }
  {
    name: 'PORT'
    value: string(appPort)
  }
  {
    name: 'MICROSOFT_APP_TYPE'
    value: 'UserAssignedMSI'
  }
  {
    name: 'MICROSOFT_APP_ID'
    value: identity.properties.clientId
  }
  {
    name: 'MICROSOFT_APP_TENANT_ID'
    value: identity.properties.tenantId
  }
  {
    name: 'SWITCHBOARD_STORE'
    value: 'cosmos'
  }
  {
    name: 'COSMOS_ENDPOINT'
    value: cosmos.outputs.endpoint
  }
  {
    name: 'COSMOS_DATABASE'
    value: cosmos.outputs.databaseName
  }
  // the database, containers and throughput are this template's (the bot cannot create
  // them with a managed identity, and must not set throughput of its own)
  {
    name: 'COSMOS_THROUGHPUT'
    value: 'none'
  }
  {
    name: 'SWITCHBOARD_RETENTION_DAYS'
    value: string(retentionDays)
  }
  // on SIGTERM the bot finishes turns in flight within this, before App Service kills it
  {
    name: 'SWITCHBOARD_SHUTDOWN_SECONDS'
    value: string(drainSeconds)
  }
  {
    name: 'SWITCHBOARD_CONFIG'
    value: configFile
  }
  {
    name: 'SWITCHBOARD_LOG_LEVEL'
    value: logLevel
  }
  // azure-identity: DefaultAzureCredential signs in to Cosmos DB as this managed identity
  {
    name: 'AZURE_CLIENT_ID'
    value: identity.properties.clientId
  }
  // telemetry/: traces, metrics and logs go to Application Insights (azure-monitor-opentelemetry)
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: monitoring.outputs.connectionString
  }
]

var siteConfig = {
  linuxFxVersion: 'PYTHON|${pythonVersion}'
  appCommandLine: 'python app.py'
  alwaysOn: true
  healthCheckPath: '/healthz'
  http20Enabled: true
  minTlsVersion: '1.2'
  ftpsState: 'Disabled'
  appSettings: concat(
    appSettings,
    map(items(extraAppSettings), setting => { name: setting.key, value: string(setting.value) })
  )
}

var siteIdentity = {
  type: 'UserAssigned'
  userAssignedIdentities: {
    '${identity.id}': {}
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: appServicePlanName
  location: location
  kind: 'linux'
  sku: {
    name: appServiceSku
    capacity: instanceCount
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: webAppName
  location: location
  kind: 'app,linux'
  identity: siteIdentity
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // any instance serves any chat: no sticky sessions
    clientAffinityEnabled: false
    siteConfig: siteConfig
  }
}

resource staging 'Microsoft.Web/sites/slots@2024-04-01' = if (stagingSlot) {
  parent: site
  name: 'staging'
  location: location
  kind: 'app,linux'
  identity: siteIdentity
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    siteConfig: siteConfig
  }
}

module bot 'botRegistration/azurebot.bicep' = {
  name: 'switchboard-bot'
  params: {
    botServiceName: botServiceName
    botDisplayName: botDisplayName
    botServiceSku: botServiceSku
    identityResourceId: identity.id
    identityClientId: identity.properties.clientId
    identityTenantId: identity.properties.tenantId
    botAppDomain: site.properties.defaultHostName
  }
}

// Outputs: the Toolkit's arm/deploy writes each one into env/.env.<environment>.
@description('The bot\'s app id: the managed identity\'s client id (MICROSOFT_APP_ID, the manifest\'s botId).')
output BOT_ID string = identity.properties.clientId
output BOT_TENANT_ID string = identity.properties.tenantId
@description('The web app\'s host name (the manifest\'s validDomains).')
output BOT_DOMAIN string = site.properties.defaultHostName
output BOT_ENDPOINT string = 'https://${site.properties.defaultHostName}'
@description('Where azureAppService/zipDeploy and az webapp deploy send the app.')
output AZURE_APP_SERVICE_RESOURCE_ID string = site.id
output AZURE_APP_SERVICE_NAME string = site.name
@description('The staging slot\'s resource id, empty without one.')
output AZURE_APP_SERVICE_STAGING_RESOURCE_ID string = stagingSlot ? staging.id : ''
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output COSMOS_DATABASE string = cosmos.outputs.databaseName
