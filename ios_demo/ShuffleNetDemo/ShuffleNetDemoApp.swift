import SwiftUI

@main
struct ShuffleNetDemoApp: App {
    var body: some Scene {
        WindowGroup {
            ContentView()
        }
    }
}
