// The Azure Bot resource: Bot Framework's registration of the bot, signed in as the
// user-assigned managed identity, with its messaging endpoint and the Microsoft Teams channel.

@description('Azure Bot resource name: 2 to 64 letters, digits, hyphens, periods and underscores.')
param botServiceName string

@maxLength(42)
param botDisplayName string

@description('F0 (free) covers the Teams channel; S1 is the paid tier.')
@allowed([
  'F0'
  'S1'
])
param botServiceSku string

param identityResourceId string
param identityClientId string
param identityTenantId string

@description('The host name of the web app (bot.contoso.com or <site>.azurewebsites.net).')
param botAppDomain string

resource botService 'Microsoft.BotService/botServices@2022-09-15' = {
  name: botServiceName
  location: 'global'
  kind: 'azurebot'
  sku: {
    name: botServiceSku
  }
  properties: {
    displayName: botDisplayName
    endpoint: 'https://${botAppDomain}/api/messages'
    msaAppType: 'UserAssignedMSI'
    msaAppId: identityClientId
    msaAppTenantId: identityTenantId
    msaAppMSIResourceId: identityResourceId
  }
}

resource teamsChannel 'Microsoft.BotService/botServices/channels@2022-09-15' = {
  parent: botService
  name: 'MsTeamsChannel'
  location: 'global'
  properties: {
    channelName: 'MsTeamsChannel'
    properties: {
      isEnabled: true
    }
  }
}

output botServiceName string = botService.name
