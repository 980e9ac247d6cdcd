export async function runCommand(a: string[]): Promise<number> { console.log(a); return 0; }
