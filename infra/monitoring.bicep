// Application Insights on a Log Analytics workspace (workspace-based), where the bot's
// traces, metrics and logs go once APPLICATIONINSIGHTS_CONNECTION_STRING is set.

param workspaceName string
param appInsightsName string
param location string

@description('How long the workspace keeps data, in days.')
@minValue(30)
@maxValue(730)
param retentionDays int

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    // the workspace keeps the data, for retentionDays
    WorkspaceResourceId: workspace.id
  }
}

output connectionString string = appInsights.properties.ConnectionString
output appInsightsName string = appInsights.name
