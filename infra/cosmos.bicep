// Cosmos DB for NoSQL: the account, Switchboard's database, one container per entry of
// cosmos-containers.json (partition key, indexing policy, TTL), and data-plane role
// assignments, so the bot reaches it with its managed identity and no key.
//
// The containers are created here, not by the app: with Microsoft Entra ID the data-plane
// roles can read and write items but cannot create databases or containers.

@description('Cosmos DB account name: 3 to 44 lowercase letters, digits and hyphens, unique in Azure.')
@minLength(3)
@maxLength(44)
param accountName string

param location string

@description('The database the bot uses (the app reads it as COSMOS_DATABASE).')
param databaseName string

@description('provisioned: the database shares autoscale throughput between its containers; serverless: pay per request, no throughput to set.')
@allowed([
  'provisioned'
  'serverless'
])
param capacityMode string

@description('The most RU/s autoscale may reach, shared by all containers (it scales between a tenth of this and this). Provisioned mode only.')
@minValue(1000)
param autoscaleMaxThroughput int

@description('true: keys are refused, only Microsoft Entra ID (managed identities, az login) gets in.')
param disableLocalAuth bool

@description('Spread the account over availability zones (where the region has them).')
param zoneRedundant bool

@description('The bot identity\'s principal (object) id: gets Cosmos DB Built-in Data Contributor.')
param appPrincipalId string

@description('Principal (object) ids of operators who read the store with switchboard-admin: get Cosmos DB Built-in Data Reader.')
param readerPrincipalIds array

// Cosmos DB's built-in data-plane role definitions
var dataReaderRoleId = '00000000-0000-0000-0000-000000000001'
var dataContributorRoleId = '00000000-0000-0000-0000-000000000002'

var containers = loadJsonContent('cosmos-containers.json', '$.containers')

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  name: accountName
  location: location
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: zoneRedundant
      }
    ]
    capabilities: capacityMode == 'serverless' ? [
      {
        name: 'EnableServerless'
      }
    ] : []
    disableLocalAuth: disableLocalAuth
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
    options: capacityMode == 'serverless' ? {} : {
      autoscaleSettings: {
        maxThroughput: autoscaleMaxThroughput
      }
    }
  }
}

resource container 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = [
  for entry in containers: {
    parent: database
    name: entry.name
    properties: {
      // no options: the containers share the database's throughput
      resource: union(
        {
          id: entry.name
          partitionKey: entry.partitionKey
          indexingPolicy: entry.indexingPolicy
        },
        contains(entry, 'defaultTtl') ? { defaultTtl: entry.?defaultTtl } : {}
      )
    }
  }
]

resource appDataContributor 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = {
  parent: account
  name: guid(account.id, appPrincipalId, dataContributorRoleId)
  properties: {
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/${dataContributorRoleId}'
    principalId: appPrincipalId
    scope: account.id
  }
}

resource operatorDataReader 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = [
  for principalId in readerPrincipalIds: {
    parent: account
    name: guid(account.id, principalId, dataReaderRoleId)
    properties: {
      roleDefinitionId: '${account.id}/sqlRoleDefinitions/${dataReaderRoleId}'
      principalId: principalId
      scope: account.id
    }
  }
]

output endpoint string = account.properties.documentEndpoint
output accountName string = account.name
output databaseName string = database.name
